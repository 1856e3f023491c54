"""A conversation written out, as its owner downloads it: Markdown (the answers are Markdown already) or PDF.

Only the branch the conversation shows is written, in order; each answer says that an AI wrote it and which
model (AI Act transparency travels with the text). The PDF uses the PDF's standard fonts, which hold the
Latin-1 characters: French typography's other signs are written with their nearest equivalents, and any other
character as "?" (a PDF needs no font file then, and the text stays searchable).
"""
from __future__ import annotations

from collections.abc import Sequence

from fpdf import FPDF

from socle.db.models import Conversation, Message
from socle.rag import extractive

_NEAREST = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "…": "...", "œ": "oe",
                          "Œ": "OE", "€": "EUR", "\u202f": " ", "\u2009": " ", "•": "-", "→": "->"})


def author(message: Message, conversation: Conversation) -> str:
    if message.role == "user":
        return "Vous"
    if extractive.is_extracts(message.content):  # quoted from the documents: not generated
        return "Extraits de vos documents (sans reformulation)"
    return f"Réponse de {message.model or conversation.model} (générée par IA)"


def to_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    parts = [f"# {conversation.title}", f"Conversation du {conversation.created_at:%d/%m/%Y}, "
             f"exportée depuis Socle IA."]
    for message in messages:
        parts.append(f"## {author(message, conversation)}")
        parts.append(message.content.strip() or "(réponse vide)")
    return "\n\n".join(parts) + "\n"


def to_pdf(conversation: Conversation, messages: Sequence[Message]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(conversation.title))
    pdf.set_creator("Socle IA")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.multi_cell(0, 8, _latin1(conversation.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    pdf.multi_cell(0, 6, _latin1(f"Conversation du {conversation.created_at:%d/%m/%Y}, exportée depuis Socle IA."),
                   new_x="LMARGIN", new_y="NEXT")
    for message in messages:
        pdf.ln(4)
        pdf.set_font("helvetica", "B", 11)
        pdf.multi_cell(0, 6, _latin1(author(message, conversation)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", "", 10)
        pdf.multi_cell(0, 5, _latin1(message.content.strip() or "(réponse vide)"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    return text.translate(_NEAREST).encode("latin-1", "replace").decode("latin-1")
