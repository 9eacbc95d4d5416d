"""School and its classes (班级). A class belongs to a cohort (入学年份, i.e. 年级 "2026级") of one stage."""
from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import relationship

SCHOOL_TYPES = ("初中", "高中", "完全中学", "九年一贯制")
STAGES = ("初中", "高中")
# 年级 names and years per stage: app.schoolyear (one definition)


class School(Model):
    __tablename__ = "school"
    __scope__ = "self"
    id = Column(Integer, primary_key=True)
    code = Column(String(10), unique=True, nullable=False)          # 学校标识码 (10 digits)
    name = Column(String(100), nullable=False)
    # 所属区县 and its ancestors, kept denormalised so a bureau scope is one indexed equality.
    county_code = Column(String(6), ForeignKey("region.code"), nullable=False, index=True)
    city_code = Column(String(6), nullable=False, index=True)
    province_code = Column(String(6), nullable=False, index=True)
    school_type = Column(String(10), nullable=False)                # 办学类型
    schooling = Column(String(20), nullable=False, default="初中3年")  # 学制
    address = Column(String(200))
    principal = Column(String(50))
    phone = Column(String(20))
    county = relationship("Region", foreign_keys=[county_code], lazy="joined")

    def __repr__(self) -> str:
        return self.name


class SchoolClass(Model):
    __tablename__ = "school_class"
    __scope__ = "school"
    __table_args__ = (
        UniqueConstraint("school_id", "stage", "cohort_year", "class_no", name="uq_class_number"),
        Index("ix_class_school_cohort", "school_id", "stage", "cohort_year"),
    )
    id = Column(Integer, primary_key=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    stage = Column(String(4), nullable=False)                       # 初中 | 高中
    cohort_year = Column(Integer, nullable=False)                   # 年级 = 入学年份, e.g. 2026级
    class_no = Column(Integer, nullable=False)                      # 班号
    name = Column(String(40), nullable=False)                       # e.g. 初一(3)班
    capacity = Column(Integer, nullable=True)                       # 班额 override by the county; None = county default
    school = relationship("School", lazy="joined")

    def __repr__(self) -> str:
        return f"{self.cohort_year}级 {self.name}"
