"""学生: the lifelong identity and the national 学生基本信息 form (DOMAIN.md §2.1), plus the current enrollment
(school, cohort, class, status) kept on the row for fast scoped lists; its history lives in Enrollment."""
from flask_appbuilder.models.sqla import Model
from sqlalchemy import (Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, false,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

# 学籍状态. Only 在校 students graduate (DOMAIN §4.1).
STATUSES = ("在校", "休学", "转出", "毕业", "结业", "肄业", "退学", "开除", "死亡", "出国", "失踪", "其他离校")
SEXES = {"1": "男", "2": "女"}


class Student(Model):
    __tablename__ = "student"
    __scope__ = "school"
    __table_args__ = (
        # scope column first, then the filters bureau lists use most (PERF-BASELINES B.2), then id: the lists
        # are ordered by (school_id, id), so a filtered page is one ordered index range per school and the
        # filtered count an index-only scan (docs/PERFORMANCE.md, student list)
        Index("ix_student_school_status_cohort_id", "school_id", "status", "cohort_year", "id"),
        Index("ix_student_school_name", "school_id", "name"),
        # 学籍号 prefix within a county: an index range per school (the unique xjh index alone leaves the
        # planner choosing between the prefix's rows province-wide and every row of the county)
        Index("ix_student_school_xjh", "school_id", "xjh"),
        Index("ix_student_dup_key", "name", "sex", "birth_date"),
        Index("ix_student_school_completion", "school_id", "needs_completion"),
    )
    id = Column(Integer, primary_key=True)
    xjh = Column(String(19), unique=True, nullable=False)           # 全国学籍号: G/J/L + 18
    # 学生个人基础信息 (1–13)
    name = Column(String(50), nullable=False, index=True)           # 1 姓名★
    sex = Column(String(1), nullable=False)                         # 2 性别★ (XB)
    birth_date = Column(Date, nullable=False)                       # 3 出生日期★
    birthplace = Column(String(12))                                 # 4 出生地★ (12-digit 行政区划代码)
    native_place = Column(String(50))                               # 5 籍贯★
    ethnicity = Column(String(2))                                   # 6 民族★ (MZ)
    nationality = Column(String(3), default="CHN")                  # 7 国籍/地区★ (GJ)
    id_type = Column(String(1), nullable=False, default="1")        # 8 身份证件类型★ (SFZJLX)
    id_number = Column(String(30), index=True)                      # 9 身份证件号
    gatq = Column(String(2), default="00")                          # 10 港澳台侨外★ (GATQ)
    political = Column(String(2), default="13")                     # 11 政治面貌 (ZZMM)
    health = Column(String(2), default="10")                        # 12 健康状况★ (JKZK)
    # 学生个人辅助信息 (14–19)
    name_pinyin = Column(String(100))                               # 14 姓名拼音
    former_name = Column(String(50))                                # 15 曾用名
    id_valid_until = Column(String(20))                             # 16 身份证件有效期
    hukou_place = Column(String(12))                                # 17 户口所在地★ (12-digit)
    hukou_type = Column(String(1))                                  # 18 户口性质★ (HKXZ)
    specialty = Column(String(100))                                 # 19 特长
    # 学生学籍基本信息 (20–27); 22 年级 and 23 班级 are the enrollment below
    aux_no = Column(String(30))                                     # 20 学籍辅号
    seat_no = Column(String(10))                                    # 21 班内学号
    entry_ym = Column(String(6))                                    # 24 入学年月★ YYYYMM
    entry_mode = Column(String(2))                                  # 25 入学方式★ (RXFS)
    study_mode = Column(String(1))                                  # 26 就读方式★ (JDFS)
    source = Column(String(1))                                      # 27 学生来源 (XSLY)
    # 学生个人联系信息 (28–34)
    current_address = Column(String(200))                           # 28 现住址★
    mail_address = Column(String(200))                             # 29 通信地址★
    home_address = Column(String(200))                              # 30 家庭地址★
    phone = Column(String(20))                                      # 31 联系电话★
    postcode = Column(String(6))                                    # 32 邮政编码★
    email = Column(String(100))                                     # 33 电子信箱
    homepage = Column(String(200))                                  # 34 主页地址
    # 学生个人扩展信息 (35–45)
    only_child = Column(Boolean)                                    # 35 是否独生子女★
    preschool = Column(Boolean)                                     # 36 是否受过学前教育★
    left_behind = Column(String(1), default="0")                    # 37 是否留守儿童 (LSET)
    migrant_child = Column(Boolean, default=False)                  # 38 是否进城务工人员随迁子女
    orphan = Column(Boolean, default=False)                         # 39 是否孤儿
    martyr_child = Column(Boolean, default=False)                   # 40 是否烈士或优抚子女
    inclusive = Column(String(2), default="00")                     # 41 随班就读 (SBJD)
    disability = Column(String(1), default="0")                     # 42 残疾类型 (CJLX)
    gov_degree = Column(Boolean, default=False)                     # 43 是否由政府购买学位
    needs_aid = Column(Boolean, default=False)                      # 44 是否需要申请资助
    one_subsidy = Column(Boolean, default=False)                    # 45 是否享受一补
    # 学生上下学交通方式 (46–48)
    distance_km = Column(Numeric(6, 1))                             # 46 上下学距离(公里)
    transport = Column(String(1))                                   # 47 上下学交通方式 (JTFS)
    school_bus = Column(Boolean, default=False)                     # 48 是否需要乘坐校车
    # current enrollment (22 年级, 23 班级)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    stage = Column(String(4), nullable=False)                       # 初中 | 高中
    cohort_year = Column(Integer, nullable=False)                   # 22 年级★ (入学年份, 2026级)
    class_id = Column(Integer, ForeignKey("school_class.id"), nullable=True, index=True)  # 23 班级★
    status = Column(String(8), nullable=False, default="在校", index=True)
    # 问题学籍 flag (kept by app.problems) and soft delete (删除 stays visible as deleted)
    has_problem = Column(Boolean, nullable=False, default=False, server_default=false(), index=True)
    deleted_at = Column(DateTime, nullable=True)
    delete_reason = Column(String(200), nullable=True)
    # 待补录: ★ fields a roster did not carry (小学毕业生 admitted by 调档); cleared once the registrar completes them
    needs_completion = Column(Boolean, nullable=False, default=False, server_default=false())
    # 毕业/结业/肄业
    graduated_on = Column(Date, nullable=True)
    cert_no = Column(String(40), nullable=True, index=True)                # 毕业证号 (pattern: a setting)
    # 学生照片: the stored file's random name under UPLOAD_FOLDER/photos (app.photos), served only in scope
    photo = Column(String(40), nullable=True)
    school = relationship("School", lazy="joined")
    school_class = relationship("SchoolClass", lazy="joined")
    guardians = relationship("Guardian", back_populates="student", order_by="Guardian.seq",
                             cascade="all, delete-orphan")
    enrollments = relationship("Enrollment", order_by="Enrollment.id", cascade="all, delete-orphan")

    @property
    def sex_label(self) -> str:
        return SEXES.get(self.sex, self.sex)

    def __repr__(self) -> str:
        return f"{self.name}({self.xjh})"


class Guardian(Model):
    """家庭成员或监护人信息 (items 49–60 and 61–72): at most two per student."""
    __tablename__ = "guardian"
    __scope__ = "student"
    __table_args__ = (UniqueConstraint("student_id", "seq", name="uq_guardian_seq"),)
    id = Column(Integer, primary_key=True)
    student_id = Column(Integer, ForeignKey("student.id", ondelete="CASCADE"), nullable=False, index=True)
    seq = Column(Integer, nullable=False, default=1)                # 信息一 / 信息二
    name = Column(String(50), nullable=False)                       # 姓名★
    relation = Column(String(2), nullable=False)                    # 关系★ (GX)
    relation_note = Column(String(50))                              # 关系说明
    ethnicity = Column(String(2))                                   # 民族
    employer = Column(String(100))                                  # 工作单位
    address = Column(String(200))                                   # 现住址
    hukou_place = Column(String(12))                                # 户口所在地★ (12-digit; foreigners may leave it empty)
    phone = Column(String(20))                                      # 联系电话
    is_guardian = Column(Boolean, nullable=False, default=True)     # 是否监护人★
    id_type = Column(String(1))                                     # 身份证件类型
    id_number = Column(String(30))                                  # 身份证件号
    position = Column(String(50))                                   # 职务
    student = relationship("Student", back_populates="guardians")

    def __repr__(self) -> str:
        return self.name


class Enrollment(Model):
    """One span of a student at a school: opened on entry, closed when the student leaves, graduates or moves.
    `current` is 1 on the open span and NULL on closed ones, so UNIQUE(student_id, current) allows exactly one
    open span per student on every database (NULLs never collide; MariaDB has no partial indexes)."""
    __tablename__ = "enrollment"
    __scope__ = "school"
    __table_args__ = (UniqueConstraint("student_id", "current", name="uq_enrollment_one_current"),)
    id = Column(Integer, primary_key=True)
    student_id = Column(Integer, ForeignKey("student.id", ondelete="CASCADE"), nullable=False, index=True)
    school_id = Column(Integer, ForeignKey("school.id"), nullable=False, index=True)
    stage = Column(String(4), nullable=False)
    cohort_year = Column(Integer, nullable=False)
    class_id = Column(Integer, ForeignKey("school_class.id"), nullable=True)
    status = Column(String(8), nullable=False)
    started_on = Column(Date, nullable=False)
    ended_on = Column(Date, nullable=True)
    reason = Column(String(200), nullable=True)
    current = Column(Integer, nullable=True, default=1)
    school = relationship("School", lazy="joined")
    school_class = relationship("SchoolClass", lazy="joined")
    student = relationship("Student", viewonly=True)
