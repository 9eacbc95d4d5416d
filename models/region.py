"""行政区划 (GB/T 2260): province → city → county. Scoping walks this tree by code prefix."""
from flask_appbuilder.models.sqla import Model
from sqlalchemy import Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

LEVELS = ("province", "city", "county")
LEVEL_LABELS = {"province": "省", "city": "地市", "county": "区县"}


class Region(Model):
    __tablename__ = "region"
    __scope__ = "region"
    id = Column(Integer, primary_key=True)
    code = Column(String(6), unique=True, nullable=False)           # 行政区划代码
    name = Column(String(64), nullable=False)
    level = Column(String(10), nullable=False, index=True)          # province | city | county
    parent_code = Column(String(6), ForeignKey("region.code"), nullable=True, index=True)
    parent = relationship("Region", remote_side=[code], lazy="joined", join_depth=1)

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS.get(self.level, self.level)

    def __repr__(self) -> str:
        return f"{self.name}({self.code})"
