"""代码表: the national code tables (性别, 民族, 国籍 …) as data the superadmin can extend, and settings
(班额, evidence limits, key fields …) that a province, city or county can override."""
from flask_appbuilder.models.sqla import Model
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, UniqueConstraint


class Code(Model):
    __tablename__ = "code"
    __scope__ = "public"
    __table_args__ = (UniqueConstraint("table", "code", name="uq_code_table_code"),)
    id = Column(Integer, primary_key=True)
    table = Column(String(10), nullable=False, index=True)       # XB, MZ, GJ, SFZJLX …
    table_name = Column(String(30), nullable=False)              # 性别, 民族 …
    code = Column(String(10), nullable=False)
    name = Column(String(60), nullable=False)
    sort = Column(Integer, nullable=False, default=0)
    active = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"


class Setting(Model):
    """A value for one key at one level of the region tree (region_code NULL = whole installation).
    The most specific level wins: county, then city, then province, then installation, then the code default."""
    __tablename__ = "setting"
    __scope__ = "region_row"
    __table_args__ = (UniqueConstraint("key", "region_code", name="uq_setting_key_region"),)
    id = Column(Integer, primary_key=True)
    key = Column(String(50), nullable=False, index=True)
    region_code = Column(String(6), ForeignKey("region.code"), nullable=True, index=True)
    value = Column(String(500), nullable=False)
    note = Column(String(200), nullable=True)

    def __repr__(self) -> str:
        return f"{self.key}@{self.region_code or '*'}={self.value}"
