"""Identifiers at the edges: the identity check API the student form calls as the registrar types, and the form
and schema fields that normalise a pasted 身份证件号 / 学籍号 (app.identity.clean) *before* their length limit runs,
so a number pasted with a trailing space or NBSP is not refused for being "too long"."""
from flask import jsonify, request
from flask_appbuilder.api import BaseApi, expose, protect, safe
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from marshmallow import fields
from marshmallow.validate import Length as SchemaLength
from wtforms import StringField
from wtforms.validators import Length, Optional

from app.errors import json_error
from app.identity import check_id_number, check_xjh, clean

# column → (the longest normalised value, the Chinese refusal)
LIMITS = {"id_number": (30, "身份证件号不能超过30位"), "xjh": (19, "学籍号应为19位（G/J/L加18位）")}


def clean_text(value):
    """WTForms filter / schema step: the identifier as app.identity.clean leaves it (None stays None)."""
    return clean(value)[0] if isinstance(value, str) else value


def identifier_form_field(label, column: str, description=None):
    """A text field whose value is cleaned before the Length validator runs (web add/edit forms)."""
    max_len, message = LIMITS[column]
    return StringField(label, description=description, filters=[clean_text],
                       validators=[Optional(), Length(max=max_len, message=message)],
                       widget=BS3TextFieldWidget())


class IdentifierString(fields.String):
    """A REST schema string cleaned before its validators (the Length limit applies to the normalised value)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return clean_text(super()._deserialize(value, attr, data, **kwargs))


class IdentifierSchemaConverter(Model2SchemaConverter):
    """Mixin for an API's schema converter: identifier columns become IdentifierString with a Chinese limit."""

    def _column2field(self, datamodel, column, nested=True, parent_schema_name=None):
        field = super()._column2field(datamodel, column, nested, parent_schema_name)
        if column.name not in LIMITS or not isinstance(field, fields.String) or field.dump_only:
            return field
        max_len, message = LIMITS[column.name]
        out = IdentifierString(required=field.required, allow_none=field.allow_none,
                               validate=[SchemaLength(max=max_len, error=message)])
        out.unique = getattr(field, "unique", False)
        return out


def check_answer(kind: str, value, id_type=None, id_number=None):
    """The identity check as the API answers it, or None for an unknown kind."""
    if kind == "id_number":
        return check_id_number(value).as_json()
    if kind == "xjh":
        return check_xjh(value, id_type or None, id_number or None).as_json()
    return None


class IdentityApi(BaseApi):
    """/api/v1/identity/check: is this 身份证件号 / 学籍号 valid, what was normalised, sex and birth date."""
    resource_name = "identity"
    class_permission_name = "Identity"
    method_permission_name = {"check": "read"}
    openapi_spec_tag = "Identity"
    allow_browser_login = True              # the student form calls it with the signed-in session

    @expose("/check", methods=["GET"])
    @protect()
    @safe
    def check(self):
        """Check one identifier as the registrar types it.
        ---
        get:
          summary: 校验身份证件号或全国学籍号（先规范化：全角转半角、去除首尾空格和不可见字符、小写x转大写）
          parameters:
          - in: query
            name: kind
            required: true
            schema:
              type: string
              enum: [id_number, xjh]
          - in: query
            name: value
            required: true
            schema:
              type: string
          - in: query
            name: id_type
            description: 身份证件类型 (xjh only; "1" 居民身份证)
            schema:
              type: string
          - in: query
            name: id_number
            description: 身份证件号 (xjh only; a G学籍号 must be G + this number)
            schema:
              type: string
          responses:
            200:
              description: the verdict
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      valid:
                        type: boolean
                      normalized:
                        type: string
                        nullable: true
                      sex:
                        type: string
                        nullable: true
                        enum: [男, 女, null]
                      birth_date:
                        type: string
                        format: date
                        nullable: true
                      code:
                        type: string
                        nullable: true
                      message:
                        type: string
                        nullable: true
                      notes:
                        type: array
                        items:
                          type: string
            422:
              description: kind is not id_number or xjh
        """
        args = request.args
        answer = check_answer(args.get("kind", ""), args.get("value", ""), args.get("id_type"),
                              args.get("id_number"))
        if answer is None:
            return json_error(422, "invalid", "kind应为id_number（身份证件号）或xjh（学籍号）")
        return jsonify(answer)                     # (BaseApi.response takes `code` as the HTTP status)
