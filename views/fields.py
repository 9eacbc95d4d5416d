"""Form fields and formatters shared by the record screens: code-table dropdowns and labels."""
from flask_appbuilder.fieldwidgets import Select2Widget
from wtforms import SelectField
from wtforms.validators import Optional

from app.codes import codes, label
from app.extensions import db


def code_choices(table: str, blank=True):
    def choices():
        items = [(c, f"{c} {n}") for c, n in codes(db.session, table).items()]
        return ([("", "")] if blank else []) + items
    return choices


def code_field(title: str, table: str, required=False):
    """A dropdown over a code table (data, so the superadmin's additions appear at once)."""
    return SelectField(title, choices=code_choices(table, blank=not required), validators=[Optional()],
                       widget=Select2Widget(), coerce=lambda v: v if v not in ("", None) else None,
                       validate_choice=True)


def code_formatter(table: str):
    return lambda value: label(db.session, table, value)


def yes_no(value):
    from flask_babel import gettext
    return "" if value is None else (gettext("是") if value else gettext("否"))
