"""FastAPI dependencies: the platform's services and the authenticated caller."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from socle.chat.conversations import ConversationService
from socle.chat.turns import ChatTurns
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

T = TypeVar("T")

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
    return platform(request).search


def answering_service(request: Request) -> Answering:
    """Resolved only by a chat that asks for a search: plain chat does not pay for it."""
    return platform(request).answering


def inference_service(request: Request) -> InferenceService:
    return platform(request).inference


async def inference(request: Request) -> InferenceService:
    return inference_service(request)


def bearer_token(header: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, if that is what it holds."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def caller(request: Request) -> Principal:
    """Deny by default: every route that takes this dependency needs a valid API key."""
    return await platform(request).identity.authenticate(bearer_token(request.headers.get("authorization", "")))


Caller = Annotated[Principal, Depends(caller)]
Identity = Annotated[IdentityService, Depends(identity)]
Inference = Annotated[InferenceService, Depends(inference)]
Usage = Annotated[UsageService, Depends(usage)]
Quotas = Annotated[QuotaService, Depends(quotas)]
Collections = Annotated[CollectionService, Depends(collections)]
Documents = Annotated[DocumentService, Depends(documents)]
Search = Annotated[SearchService, Depends(search)]


async def conversations(request: Request) -> ConversationService:
    return platform(request).conversations


async def chat_turns(request: Request) -> ChatTurns:
    return platform(request).chat_turns


Conversations = Annotated[ConversationService, Depends(conversations)]
Turns = Annotated[ChatTurns, Depends(chat_turns)]



def app_services(kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency that gives an installed app's services, found by their type: how an app's routes reach
    what the platform built for it (``Annotated[MyAppServices, Depends(app_services(MyAppServices))]``)."""
    async def dependency(request: Request) -> T:
        return platform(request).app(kind)
    return dependency
