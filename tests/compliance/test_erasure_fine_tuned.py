"""Erasing a person takes their fine-tuned models out of the catalogue (each one's name and card hold their e-mail's
local part) with their trainings' folders, and leaves everyone else's; in the platform's own services, on real SQLite
and PostgreSQL."""
from __future__ import annotations

from socle.db.models import FineTuningJob, utcnow
from socle.finetuning.model import model_card, model_config, model_name
from socle.identity.permissions import SYSTEM, Principal
from socle.platform import Platform
from tests.finetuning.test_jobs import EXAMPLE, person, platform  # noqa: F401 - the fixture


async def _fine_tuned(p: Platform, owner: Principal) -> tuple[str, int]:
    """A model of ``owner``'s, its job and its folder as a finished job leaves them (the adapter aside)."""
    base = p.registry.get("smollm2-135m").config
    examples = await p.files.create(owner, "exemples.jsonl", EXAMPLE, "fine-tune")
    job = FineTuningJob(owner_id=owner.user_id, model=base.id, training_file_id=examples.id, status="succeeded",
                        hyperparameters={"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0}, seed=1,
                        created_at=utcnow())
    async with p.sessions() as session, session.begin():
        session.add(job)
    name = model_name(base.id, owner.email, "essai", job.id)
    folder = p.fine_tuning.runner.job_dir(job.id)
    folder.mkdir(parents=True)
    (folder / "adapter.gguf").write_bytes(b"learnt from the examples")
    card = model_card(base, job, owner_email=owner.email, examples=1, tokens=10, training_file="exemples.jsonl",
                      train_loss=1.0, valid_loss=None, at=utcnow())
    config = model_config(base, name, list(base.backends), card, owner.user_id)
    await p.models.register(config, owner_id=owner.user_id, details={"fine_tuning_job": f"ftjob-{job.id}"})
    return name, job.id


async def test_erasing_a_person_removes_their_fine_tuned_models(platform: Platform) -> None:  # noqa: F811
    leaving = await person(platform, "marie.curie@x.gouv.fr")
    staying = await person(platform, "pierre.durand@x.gouv.fr")
    gone, gone_job = await _fine_tuned(platform, leaving)
    kept, kept_job = await _fine_tuned(platform, staying)
    assert ":marie.curie:" in gone

    erased = await platform.erasure.erase_user(SYSTEM, leaving.user_id)

    assert erased.fine_tuned_models == 1 and erased.counts()["fine_tuned_models"] == 1
    stored = {model.id: model for model in (await platform.models.snapshot()).models}
    assert gone not in stored and kept in stored
    assert not [entry.name for entry in await platform.models.entries(SYSTEM)
                if "marie.curie" in entry.name or "marie.curie" in entry.config.model_dump_json()]
    runner = platform.fine_tuning.runner
    assert not runner.job_dir(gone_job).exists() and (runner.job_dir(kept_job) / "adapter.gguf").is_file()
