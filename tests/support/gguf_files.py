"""Model files made for tests: the bundled SmolLM2 GGUF with another chat template in its metadata."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from socle.inference.backends.llamacpp import bundled_smollm2

# Jinja templates as a hostile or broken model file would carry them.
LOOPING = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i * j }}{% endfor %}{% endfor %}"
FORBIDDEN = "{% set seen = messages.append(1) %}{{ messages }}"  # the immutable Jinja sandbox blocks it
REFUSING = ("{% if messages[0]['role'] != 'user' %}{{ raise_exception('The first message must be the user\\'s.') }}"
            "{% endif %}<|im_start|>user\n{{ messages[0]['content'] }}<|im_end|>\n<|im_start|>assistant\n")


def with_chat_template(target: Path, template: str) -> Path:
    """A copy of the bundled model at ``target`` whose ``tokenizer.chat_template`` is ``template``."""
    command = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(bundled_smollm2()), str(target),
               "--chat-template", template, "--force"]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return target
