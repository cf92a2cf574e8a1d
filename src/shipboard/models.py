"""Every table of the application: imports each domain's models so that ``Base.metadata`` knows
them all. It sits above the domains (they never need it); Alembic's env, copies, backups and
erasure, which work on the whole schema, do."""

from shipboard.alerting import models as _alerting  # noqa: F401
from shipboard.audit import models as _audit  # noqa: F401
from shipboard.auth import models as _auth  # noqa: F401
from shipboard.db.base import Base
from shipboard.deployments import models as _deployments  # noqa: F401
from shipboard.environments import models as _environments  # noqa: F401
from shipboard.integrations import models as _integrations  # noqa: F401
from shipboard.jobs import models as _jobs  # noqa: F401
from shipboard.monitoring import models as _monitoring  # noqa: F401
from shipboard.notifications import models as _notifications  # noqa: F401
from shipboard.performance import models as _performance  # noqa: F401
from shipboard.security import models as _security  # noqa: F401

metadata = Base.metadata
