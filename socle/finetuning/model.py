"""What a finished job becomes in the catalogue: the fine-tuned model's name, its card and its configuration.

The model is accounted like any model (its prices and size are its base's: the usage recorder reads them from the
catalogue) and served to its owner alone until it is shared (:class:`socle.inference.audience.Audience`).
"""
from __future__ import annotations

import re
from datetime import datetime

from socle.db.models import FineTuningJob
from socle.inference.audience import Audience
from socle.inference.cards import ModelCard
from socle.settings import BackendConfig, ModelConfig

_NOT_IN_AN_ID = re.compile(r"[^A-Za-z0-9._-]+")


def public_job_id(job_id: int) -> str:
    return f"ftjob-{job_id}"


def model_name(base: str, owner_email: str, suffix: str | None, job_id: int) -> str:
    """``ft:<base>:<owner>:<suffix>:<job id>``, OpenAI's shape, with the owner's e-mail local part."""
    owner = _NOT_IN_AN_ID.sub("-", owner_email.partition("@")[0]).strip("-") or "user"
    return f"ft:{base}:{owner}:{suffix or ''}:{public_job_id(job_id)}"


def checkpoint_name(model: str, step: int) -> str:
    return f"{model}:ckpt-step-{step}"


def model_card(base: ModelConfig, job: FineTuningJob, *, owner_email: str, examples: int, tokens: int,
               training_file: str, train_loss: float | None, valid_loss: float | None, at: datetime) -> ModelCard:
    """The card of a fine-tuned model, written from its job: base model, data, settings, results, date, author."""
    card = base.model_card
    hyper = job.hyperparameters
    losses = "" if train_loss is None else f" Perte finale sur les exemples d'entraînement : {train_loss:.3f}" + (
        "." if valid_loss is None else f", sur les exemples de validation : {valid_loss:.3f}.")
    description = (
        f"Modèle « {base.id} » affiné le {at:%d/%m/%Y} par {owner_email} sur {examples} exemples "
        f"({tokens} jetons) du fichier « {training_file} » : {hyper.get('n_epochs')} passes, lots de "
        f"{hyper.get('batch_size')} exemples, multiplicateur du taux d'apprentissage "
        f"{hyper.get('learning_rate_multiplier')}, adaptateur LoRA de rang {hyper.get('lora_r', 8)}.{losses}")
    return ModelCard(
        description=description[:2000],
        provider=f"Affiné sur cette plateforme à partir de « {base.id} »"
                 + (f" ({card.provider})" if card is not None else ""),
        license=card.license if card is not None else "celle du modèle de base",
        intended_use=("Ce que ses exemples lui ont appris : un style, une forme de réponse, un classement, un "
                      "vocabulaire. Pour des faits nouveaux, interrogez plutôt vos documents."),
        limitations=((card.limitations + " ") if card is not None and card.limitations else "")
        + "Il ne sait rien de plus que son modèle de base : il en imite seulement les exemples.",
        languages=list(card.languages) if card is not None else [],
        runs_on=card.runs_on if card is not None else "",
        demonstration=card.demonstration if card is not None else False,
    )


def model_config(base: ModelConfig, name: str, backends: list[BackendConfig], card: ModelCard,
                 owner_id: int) -> ModelConfig:
    """The fine-tuned model's entry: its base's context, prices and size, its owner's alone."""
    return ModelConfig(id=name, type=base.type, backends=backends, owned_by="socle",
                       max_context_length=base.max_context_length, pricing=base.pricing, impact=base.impact,
                       card=card, audience=Audience(owner_id=owner_id))
