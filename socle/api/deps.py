"""FastAPI dependencies: the platform's services and the authenticated caller."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from socle.apps.feedback.runner import AnalysisRunner
from socle.apps.feedback.service import FeedbackService
from socle.identity.permissions import Principal
from socle.identity.service import IdentityService
from socle.inference.service import InferenceService
from socle.platform import Platform
from socle.quotas.service import QuotaService
from socle.rag.answering import Answering
from socle.rag.collections import CollectionService
from socle.rag.documents import DocumentService
from socle.rag.search import SearchService
from socle.usage.service import UsageService

# Dependencies are coroutines: FastAPI would run plain functions in a thread pool, a costly hop per call.

def platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


async def identity(request: Request) -> IdentityService:
    return platform(request).identity


async def usage(request: Request) -> UsageService:
    return platform(request).usage


async def quotas(request: Request) -> QuotaService:
    return platform(request).quotas


async def collections(request: Request) -> CollectionService:
    return platform(request).collections


async def documents(request: Request) -> DocumentService:
    return platform(request).documents


async def search(request: Request) -> SearchService:
    service = platform(request).search
    assert service is not None, "search is started in the app's lifespan"
    return service


def answering_service(request: Request) -> Answering:
    """Resolved only by a chat that asks for a search: plain chat does not pay for it."""
    service = platform(request).answering
    assert service is not None, "search is started in the app's lifespan"
    return service


def inference_service(request: Request) -> InferenceService:
    service = platform(request).inference
    assert service is not None, "inference is started in the app's lifespan"
    return service


async def inference(request: Request) -> InferenceService:
    return inference_service(request)


async def caller(request: Request) -> Principal:
    """Deny by default: every route that takes this dependency needs a valid API key."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return await platform(request).identity.authenticate(token.strip() if scheme.lower() == "bearer" else None)


Caller = Annotated[Principal, Depends(caller)]
Identity = Annotated[IdentityService, Depends(identity)]
Inference = Annotated[InferenceService, Depends(inference)]
Usage = Annotated[UsageService, Depends(usage)]
Quotas = Annotated[QuotaService, Depends(quotas)]
Collections = Annotated[CollectionService, Depends(collections)]
Documents = Annotated[DocumentService, Depends(documents)]
Search = Annotated[SearchService, Depends(search)]


async def feedback(request: Request) -> FeedbackService:
    return platform(request).feedback


async def feedback_runner(request: Request) -> AnalysisRunner:
    runner = platform(request).feedback_runner
    assert runner is not None, "the feedback app is started in the app's lifespan"
    return runner


Feedback = Annotated[FeedbackService, Depends(feedback)]
FeedbackRunner = Annotated[AnalysisRunner, Depends(feedback_runner)]
