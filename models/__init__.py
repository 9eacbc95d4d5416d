"""The data: declarative models, one module per aggregate. Importing this package registers them all."""
from models.region import Region  # noqa: F401
from models.school import School, SchoolClass  # noqa: F401
from models.student import Enrollment, Guardian, Student  # noqa: F401
from models.codes import Code, Setting  # noqa: F401
from models.user import XuejiUser  # noqa: F401
from models.audit import AuditEvent  # noqa: F401
from models.requests import Chain, ChainStep, Evidence, Problem, Request, RequestStep  # noqa: F401
from models.admissions import Admission, ImportBatch, Quota, RosterBatch  # noqa: F401
from models.exports import ExportJob  # noqa: F401
from models.exchange import ExchangePeer  # noqa: F401
from models.files import StoredFile, StoredFileChunk  # noqa: F401
from models.tasks import BackgroundTask  # noqa: F401
from models.statistics import StatisticsRefresh, StudentTally  # noqa: F401
