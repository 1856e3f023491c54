"""How the feedback app's routes reach its services (built by the platform, found by their type)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from socle.api.deps import app_services
from socle.apps.feedback.analyses import Analyses
from socle.apps.feedback.app import FeedbackServices
from socle.apps.feedback.service import FeedbackService

Services = Annotated[FeedbackServices, Depends(app_services(FeedbackServices))]


async def _datasets(services: Services) -> FeedbackService:
    return services.datasets


async def _analyses(services: Services) -> Analyses:
    return services.analyses


Feedback = Annotated[FeedbackService, Depends(_datasets)]
FeedbackAnalyses = Annotated[Analyses, Depends(_analyses)]
