"""Every table, imported in one place so Alembic sees the whole schema."""

from shared.access.models import ApiKey, RateCounter
from shared.catalog.models import Course
from shared.db import Base
from shared.learners.models import Interaction, Learner
from shared.ledger.idempotency import IdempotencyKey
from shared.ledger.models import Task
from shared.recommendations.models import ModelVersion
from shared.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "Base",
    "Course",
    "IdempotencyKey",
    "Interaction",
    "Learner",
    "ModelVersion",
    "RateCounter",
    "Task",
    "Webhook",
    "WebhookDelivery",
]
