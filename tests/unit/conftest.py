"""Fixtures of the unit tier: pure, no I/O."""

from __future__ import annotations

import pytest

from rollout.domain.models import Rollout
from tests.unit.builders import started


@pytest.fixture
def rollout() -> Rollout:
    return started()
