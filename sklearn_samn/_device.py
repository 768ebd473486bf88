"""Device resolution and seeding for the torch training loop."""

import re

import numpy as np

_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_string(device):
    """Raise ``ValueError`` unless ``device`` is a device string we accept.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    if not isinstance(device, str) or not _DEVICE_PATTERN.fullmatch(device):
        raise ValueError(
            "The 'device' parameter of SAMNClassifier must be 'auto', 'cpu', "
            f"'cuda' or 'cuda:N' with N a GPU index; got {device!r}."
        )


def resolve_device(device):
    """Turn a device string into a ``torch.device``, checking it exists.

    Parameters
    ----------
    device : str
        ``"auto"`` picks the current CUDA device when CUDA is available and
        the CPU otherwise.

    Returns
    -------
    torch.device
    """
    import torch

    check_device_string(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available in "
                "this torch installation (torch.cuda.is_available() is False). "
                "Use device='cpu' or device='auto'."
            )
        resolved = torch.device(device)
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
        if resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
        return resolved
    return torch.device("cpu")


def torch_generator(random_state):
    """Return a CPU ``torch.Generator`` seeded from a NumPy ``RandomState``.

    Parameters
    ----------
    random_state : numpy.random.RandomState
        Already checked with :func:`sklearn.utils.check_random_state`.

    Returns
    -------
    torch.Generator
    """
    import torch

    seed = int(random_state.randint(np.iinfo(np.int32).max))
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator
