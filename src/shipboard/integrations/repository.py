from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.engine import is_postgres
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.deployments.models import DeploymentConfig
from shipboard.environments.models import Environment
from shipboard.integrations.models import Integration, IntegrationDelivery, IntegrationDeployment
from shipboard.integrations.schemas import DeliveryFilter

# A delivery id seen with one of these outcomes was acted on; seeing it again is a redelivery.
# Ignored, rejected and invalid ones are processed again: the configuration may have been fixed
# since, and a redelivery from the provider's UI is how people check that.
APPLIED = ("recorded", "updated", "unchanged")


def get(session: Session, kind: str) -> Integration | None:
    return session.get(Integration, kind)


def list_all(session: Session) -> list[Integration]:
    return list(session.scalars(sa.select(Integration).order_by(Integration.kind)))


def add(session: Session, integration: Integration) -> None:
    session.add(integration)
    session.flush()


def delete(session: Session, integration: Integration) -> None:
    session.delete(integration)
    session.flush()


def environment_names(session: Session) -> frozenset[str]:
    return frozenset(session.scalars(sa.select(Environment.name)))


def lock_external(session: Session, kind: str, external_id: str) -> None:
    """Serialize the handling of one provider deployment until this transaction ends: its
    `deployment` and `deployment_status` events often arrive at the same moment."""
    if is_postgres(session):
        key = f"shipboard-integration:{kind}:{external_id}"
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))


def get_link(session: Session, kind: str, external_id: str) -> IntegrationDeployment | None:
    return session.get(IntegrationDeployment, (kind, external_id))


def take_over_legacy_link(
    session: Session, kind: str, legacy_id: str, external_id: str, commit_sha: str
) -> IntegrationDeployment | None:
    """The link recorded under an unscoped id before the upgrade, moved to ``external_id`` —
    only when its deployment is of the same commit (another repository's deployment with the
    same number must not take it)."""
    legacy = session.get(IntegrationDeployment, (kind, legacy_id))
    if legacy is None:
        return None
    sha = session.scalar(
        sa.select(DeploymentConfig.commit_sha).where(DeploymentConfig.id == legacy.deployment_id)
    )
    if sha is None or sha.lower() != commit_sha.lower():
        return None
    moved = IntegrationDeployment(
        kind=kind,
        external_id=external_id,
        deployment_id=legacy.deployment_id,
        external_state=legacy.external_state,
        updated_at=legacy.updated_at,
    )
    session.delete(legacy)
    session.flush()  # the deployment may be linked once only
    session.add(moved)
    session.flush()
    return moved


def add_link(session: Session, link: IntegrationDeployment) -> None:
    session.add(link)
    session.flush()


def first_applied(session: Session, kind: str, delivery_id: str) -> IntegrationDelivery | None:
    """The first delivery with this id that was acted on, if any."""
    return session.scalar(
        sa.select(IntegrationDelivery)
        .where(
            IntegrationDelivery.kind == kind,
            IntegrationDelivery.delivery_id == delivery_id,
            IntegrationDelivery.outcome.in_(APPLIED),
        )
        .order_by(IntegrationDelivery.received_at, IntegrationDelivery.id)
        .limit(1)
    )


def add_delivery(session: Session, delivery: IntegrationDelivery) -> None:
    session.add(delivery)
    session.flush()


def prune_rejected(session: Session, kind: str, *, keep: int) -> None:
    """Keep only the newest ``keep`` rejected deliveries of a kind: anyone on the internet can
    send unsigned requests, and they must not grow the table without bound."""
    newest = (
        sa.select(IntegrationDelivery.id)
        .where(IntegrationDelivery.kind == kind, IntegrationDelivery.outcome == "rejected")
        .order_by(IntegrationDelivery.received_at.desc(), IntegrationDelivery.id.desc())
        .limit(keep)
    )
    session.execute(
        sa.delete(IntegrationDelivery)
        .where(
            IntegrationDelivery.kind == kind,
            IntegrationDelivery.outcome == "rejected",
            IntegrationDelivery.id.not_in(newest),
        )
        .execution_options(synchronize_session=False)
    )


def delivery_page(
    session: Session, *, kind: str, filters: DeliveryFilter, cursor: str | None, limit: int
) -> Page[IntegrationDelivery]:
    stmt = filter_by(
        sa.select(IntegrationDelivery).where(IntegrationDelivery.kind == kind),
        IntegrationDelivery,
        filters,
        equal=("outcome",),
        time_column="received_at",
    )
    return keyset_page(
        session,
        stmt,
        sort_col=IntegrationDelivery.received_at,
        id_col=IntegrationDelivery.id,
        cursor=cursor,
        limit=limit,
    )
