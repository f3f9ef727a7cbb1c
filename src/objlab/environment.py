"""The software and hardware a figure was produced on, recorded in every manifest."""

from __future__ import annotations

import platform

import torch


def environment() -> dict:
    import peft
    import transformers

    import objlab

    return {
        "objlab": objlab.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
