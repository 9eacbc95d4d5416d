"""学生: the lifelong identity plus the current enrollment (school, cohort, class, status)."""
from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import relationship

# 学籍状态. Only 在校 students graduate (DOMAIN §4.1).
STATUSES = ("在校", "休学", "转出", "毕业", "退学", "开除", "死亡", "出国", "失踪", "其他离校")
SEXES = {"1": "男", "2": "女"}


class Student(Model):
    __tablename__ = "student"
    __scope__ = "school"
    __table_args__ = (
        # scope column first, then the filters bureau lists use most (PERF-BASELINES B.2)
        Index("ix_student_school_status_cohort_name", "school_id", "status", "cohort_year", "name"),
        Index("ix_student_school_name", "school_id", "name"),
    )
    id = Column(Integer, primary_key=True)
    xjh = Column(String(19), unique=True, nullable=False)           # 全国学籍号: G/J/L + 18
    name = Column(String(50), nullable=False, index=True)           # 姓名
    sex = Column(String(1), nullable=False)                         # 1 男, 2 女
    birth_date = Column(Date, nullable=False)
    id_type = Column(String(1), nullable=False, default="1")        # 身份证件类型, 1 = 居民身份证
    id_number = Column(String(30), nullable=True, index=True)       # 身份证件号
    ethnicity = Column(String(2), nullable=True)                    # 民族 (GB 3304)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    stage = Column(String(4), nullable=False)                       # 初中 | 高中
    cohort_year = Column(Integer, nullable=False)                   # 年级 (入学年份)
    class_id = Column(Integer, ForeignKey("school_class.id"), nullable=True, index=True)
    status = Column(String(8), nullable=False, default="在校", index=True)
    school = relationship("School", lazy="joined")
    school_class = relationship("SchoolClass", lazy="joined")

    @property
    def sex_label(self) -> str:
        return SEXES.get(self.sex, self.sex)

    def __repr__(self) -> str:
        return f"{self.name}({self.xjh})"
