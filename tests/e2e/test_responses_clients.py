"""LangChain's OpenAI classes against a running server, as the README's recipe writes them: chat (through chat
completions and through the Responses API) and embeddings offline (``check_embedding_ctx_length=False``: no
tokenizer to download, the texts are sent as they are)."""
from __future__ import annotations

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.support.servers import Server

ANSWER = "Bonjour, ceci est une réponse simulée."


@tool
def horaires_mairie(ville: str) -> str:
    """Les horaires d'ouverture de la mairie d'une ville."""
    return "de 8 h 30 à 17 h"


def test_langchain_chat_through_chat_completions_and_the_responses_api(server: Server) -> None:
    for responses in (False, True):
        chat = ChatOpenAI(model="remote-chat", base_url=server.base_url, api_key=server.admin_key,
                          use_responses_api=responses, max_retries=0)
        assert chat.invoke("Bonjour").text == ANSWER
        [call] = chat.bind_tools([horaires_mairie]).invoke("Quand ouvre la mairie ?").tool_calls
        assert call["name"] == "horaires_mairie"


def test_langchain_embeddings_offline(server: Server) -> None:
    for model in ("remote-embed", "multilingual-e5-small"):
        embeddings = OpenAIEmbeddings(model=model, base_url=server.base_url, api_key=server.admin_key,
                                      check_embedding_ctx_length=False, max_retries=0)
        vectors = embeddings.embed_documents(["Horaires de la mairie", "État civil"])
        query = embeddings.embed_query("Quand ouvre la mairie ?")
        assert len(vectors) == 2 and len(vectors[0]) == len(query) > 0
