from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.environments.models import Environment


def get(session: Session, name: str) -> Environment | None:
    return session.get(Environment, name)


def list_all(session: Session) -> list[Environment]:
    return list(session.scalars(sa.select(Environment).order_by(Environment.name)))


def names(session: Session) -> set[str]:
    return set(session.scalars(sa.select(Environment.name)))


def get_many(session: Session, names: Iterable[str]) -> dict[str, Environment]:
    """The environments of these names that exist, by name."""
    wanted = set(names)
    return {
        e.name: e
        for e in session.scalars(sa.select(Environment).where(Environment.name.in_(wanted)))
    }


def add(session: Session, environment: Environment) -> None:
    session.add(environment)
    session.flush()
