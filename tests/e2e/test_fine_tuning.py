"""Fine-tuning end to end, through the official openai SDK against a real server on the embedded SmolLM2: a tiny
LoRA run succeeds and its model is served to its owner alone (others get 404), a job is cancelled mid-training,
and a server killed (-9) mid-training resumes the job from its last checkpoint after a restart."""
from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.servers import Server, start_server, stop

pytestmark = pytest.mark.slow
ENV = {"SOCLE_JOB_LEASE_S": "3", "SOCLE_FINE_TUNING_CHECKPOINT_EVERY": "2", "SOCLE_INGESTION_WORKERS": "0"}
PAIRS = [("Bonjour", "Bonjour ! Comment puis-je vous aider ?"), ("Merci", "Avec plaisir."),
         ("Quel jour sommes-nous ?", "Je ne connais pas la date."), ("Qui es-tu ?", "Un assistant de la mairie."),
         ("Horaires ?", "La mairie ouvre de 9 h à 17 h."), ("Adresse ?", "1 place de la mairie."),
         ("Carte d'identité ?", "Prenez rendez-vous en ligne."), ("Passeport ?", "Prenez rendez-vous en ligne."),
         ("État civil ?", "Demandez un acte sur le site de la commune."), ("Au revoir", "Au revoir et bonne journée.")]


def _training_file(pairs: list[tuple[str, str]] = PAIRS) -> bytes:
    return b"".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                               ensure_ascii=False).encode() + b"\n" for q, a in pairs)


def _person(server: Server, *, group: str | None = None) -> tuple[openai.OpenAI, int]:
    """A new user with the 'user' role and a key of theirs: their SDK client and their id."""
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as admin:
        body: dict[str, object] = {"email": f"agent-{secrets.token_hex(4)}@exemple.gouv.fr", "role": "user"}
        if group:
            body["groups"] = [group]
        user = admin.post("/users", json=body).json()
        key = admin.post("/keys", json={"name": "k", "user_id": user["id"]}).json()["key"]
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120), user["id"]


def _admin(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0, timeout=120)


def _wait(what: Callable[[], object], until: Callable[[object], bool], *, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = what()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout_s} s: {value}")
        time.sleep(0.5)


def _job(client: openai.OpenAI, file_id: str, *, epochs: int, suffix: str) -> str:
    return client.fine_tuning.jobs.create(
        model="smollm2-135m", training_file=file_id, suffix=suffix, seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs, "batch_size": 2}}}).id


def _events(client: openai.OpenAI, job_id: str) -> list[object]:
    return list(reversed(client.fine_tuning.jobs.list_events(job_id, limit=1000).data))  # oldest first


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data", extra_env=ENV)
    yield running
    stop(running.process)


def test_a_tiny_run_makes_a_model_served_to_its_owner_alone(server: Server) -> None:
    owner, _ = _person(server)
    other, _ = _person(server)
    uploaded = owner.files.create(file=("exemples.jsonl", io.BytesIO(_training_file())), purpose="fine-tune")
    job_id = _job(owner, uploaded.id, epochs=1, suffix="mairie")
    created = owner.fine_tuning.jobs.retrieve(job_id)
    assert created.status in ("validating_files", "queued", "running")
    assert created.training_file == uploaded.id and created.model == "smollm2-135m"

    job = _wait(lambda: owner.fine_tuning.jobs.retrieve(job_id),
                lambda j: j.status in ("succeeded", "failed", "cancelled"), timeout_s=600)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:smollm2-135m:agent-") and job.fine_tuned_model.endswith(
        f":mairie:{job_id}")
    assert job.hyperparameters.n_epochs == 1 and job.hyperparameters.batch_size == 2
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at

    events = _events(owner, job_id)
    messages = [event.message for event in events]
    assert messages[0] == f"Created fine-tuning job: {job_id}"
    assert any(m.startswith("Validated the training file: 10 examples") for m in messages)
    metrics = [event for event in events if event.type == "metrics"]
    assert metrics and metrics[-1].data["step"] == metrics[-1].data["total_steps"] == 5
    assert all(event.data["train_loss"] > 0 for event in metrics)
    assert "The job has successfully completed." in messages
    checkpoints = owner.fine_tuning.jobs.checkpoints.list(job_id).data
    assert checkpoints and {c.step_number for c in checkpoints} <= {2, 4, 5}
    assert checkpoints[0].fine_tuned_model_checkpoint.startswith(job.fine_tuned_model + ":ckpt-step-")

    model = job.fine_tuned_model
    assert model in {m.id for m in owner.models.list().data}
    answer = owner.chat.completions.create(model=model, messages=[{"role": "user", "content": "Horaires ?"}],
                                           max_tokens=16)
    assert answer.model == model and answer.choices[0].message.content
    card = httpx.get(f"{server.base_url}/models/{model}",
                     headers={"Authorization": f"Bearer {owner.api_key}"}).json()["card"]
    assert "smollm2-135m" in card["description"] and "10 exemples" in card["description"]

    # Anyone else: the model, the job and its events do not exist.
    assert model not in {m.id for m in other.models.list().data}
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model=model, messages=[{"role": "user", "content": "Horaires ?"}])
    with pytest.raises(openai.NotFoundError):
        other.models.retrieve(model)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.retrieve(job_id)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.list_events(job_id)
    assert other.fine_tuning.jobs.list().data == []
    assert [j.id for j in owner.fine_tuning.jobs.list().data] == [job_id]


def test_sharing_with_a_group_and_publishing(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
        group = admin.post("/groups", json={"name": f"mairie-{secrets.token_hex(3)}"}).json()
    owner, _ = _person(server, group=group["name"])
    colleague, _ = _person(server, group=group["name"])
    stranger, _ = _person(server)
    uploaded = owner.files.create(file=("exemples.jsonl", io.BytesIO(_training_file(PAIRS[:4]))), purpose="fine-tune")
    job_id = _job(owner, uploaded.id, epochs=1, suffix="partage")
    job = _wait(lambda: owner.fine_tuning.jobs.retrieve(job_id),
                lambda j: j.status in ("succeeded", "failed", "cancelled"), timeout_s=600)
    assert job.status == "succeeded", job.error
    model = job.fine_tuned_model

    def share(client: openai.OpenAI, **body: object) -> httpx.Response:
        return httpx.patch(f"{server.base_url}/models/{model}", json=body,
                           headers={"Authorization": f"Bearer {client.api_key}"})

    assert share(stranger, group_ids=[group["id"]]).status_code == 404  # a model one may not see does not exist
    assert share(owner, public=True).status_code == 403  # publishing is an administrator's
    assert share(owner, group_ids=[group["id"]]).status_code == 200
    assert model in {m.id for m in colleague.models.list().data}
    assert colleague.chat.completions.create(model=model, messages=[{"role": "user", "content": "Merci"}],
                                             max_tokens=8).model == model
    assert share(colleague, group_ids=[]).status_code == 403  # only its owner shares it
    with pytest.raises(openai.NotFoundError):
        stranger.models.retrieve(model)
    assert share(_admin(server), public=True).status_code == 200
    assert stranger.models.retrieve(model).id == model


def test_cancel_mid_training(server: Server) -> None:
    owner, _ = _person(server)
    uploaded = owner.files.create(file=("exemples.jsonl", io.BytesIO(_training_file())), purpose="fine-tune")
    job_id = _job(owner, uploaded.id, epochs=20, suffix="annule")
    _wait(lambda: [e for e in _events(owner, job_id) if e.type == "metrics"], bool, timeout_s=300)
    cancelled = owner.fine_tuning.jobs.cancel(job_id)
    assert cancelled.id == job_id
    job = _wait(lambda: owner.fine_tuning.jobs.retrieve(job_id), lambda j: j.status == "cancelled", timeout_s=60)
    assert job.fine_tuned_model is None and job.finished_at
    assert "Fine-tuning job cancelled." in [e.message for e in _events(owner, job_id)]
    steps = len([e for e in _events(owner, job_id) if e.type == "metrics"])
    time.sleep(3)
    assert len([e for e in _events(owner, job_id) if e.type == "metrics"]) == steps  # the training stopped
    assert owner.fine_tuning.jobs.cancel(job_id).status == "cancelled"  # again: nothing changes


def test_a_server_killed_mid_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, extra_env=ENV)
    try:
        owner, _ = _person(server)
        uploaded = owner.files.create(file=("exemples.jsonl", io.BytesIO(_training_file())), purpose="fine-tune")
        job_id = _job(owner, uploaded.id, epochs=2, suffix="reprise")  # 10 steps, a checkpoint every 2
        _wait(lambda: owner.fine_tuning.jobs.checkpoints.list(job_id).data, bool, timeout_s=300)
        server.process.kill()  # kill -9: no shutdown, the job's lease left behind
        server.process.wait()
    finally:
        stop(server.process)

    server = start_server(data, extra_env=ENV)
    try:
        owner = openai.OpenAI(base_url=server.base_url, api_key=owner.api_key, max_retries=0, timeout=120)
        job = _wait(lambda: owner.fine_tuning.jobs.retrieve(job_id),
                    lambda j: j.status in ("succeeded", "failed", "cancelled"), timeout_s=600)
        assert job.status == "succeeded", job.error
        events = _events(owner, job_id)
        resumed = [e for e in events if e.message.startswith("Training resumed from the checkpoint at step ")]
        assert len(resumed) == 1, [e.message for e in events]
        step = resumed[0].data["resumed_from_step"]
        after = [e.data["step"] for e in events[events.index(resumed[0]):] if e.type == "metrics"]
        assert step >= 2 and after and after[0] > step and after[-1] == 10  # the steps saved are not redone
        assert owner.chat.completions.create(model=job.fine_tuned_model, max_tokens=8,
                                             messages=[{"role": "user", "content": "Merci"}]).choices
    finally:
        stop(server.process)
