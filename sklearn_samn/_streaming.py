"""How rows of ``X`` reach the training loop: float32, on the device, in blocks.

``X`` stays where the user keeps it (a NumPy array, a ``np.memmap``, any 2-D
array-like that slices): the loop asks for blocks of rows and gets float32
tensors on the training device, one block at a time, so that neither a
float32 copy of a float64 ``X`` nor ``X`` itself (for a memmap) is ever held
in memory whole.

- CPU: a block is a view of ``X`` when ``X`` is C-contiguous float32 (no
  copy), otherwise a converted copy of just that block.
- CUDA, when ``X`` fits comfortably in free device memory: ``X`` is uploaded
  once, block by block, and blocks are slices of the device copy.
- CUDA otherwise: blocks are gathered on the host into two pinned buffers
  and copied on a side stream, so that the host prepares and the bus moves
  block ``k + 1`` while the GPU computes on block ``k``.
"""

import warnings

import numpy as np
import torch

# X is kept on the GPU when its float32 size is at most this fraction of the
# free device memory; the rest is left for the logits of a block, the head
# and whatever else shares the device.
_RESIDENT_FRACTION = 0.5


def host_block(X, rows):
    """Rows ``rows`` (a slice or sorted indices) of ``X`` as a float32 array.

    A view of ``X`` when ``X`` is C-contiguous float32 and ``rows`` a slice.
    """
    block = X[rows]
    return np.ascontiguousarray(block, dtype=np.float32)


def serves_views(X, device):
    """Whether the blocks :class:`RowStream` serves of ``X`` on ``device`` for
    slices of rows are views of ``X`` rather than copies: on the CPU, when ``X``
    is a C-contiguous float32 NumPy array (or memmap). Rows read by index (folds,
    minibatches) are gathered copies whatever this says."""
    return (
        device.type == "cpu"
        and isinstance(X, np.ndarray)
        and X.dtype == np.float32
        and X.flags.c_contiguous
    )


def _as_tensor(array):
    if array.flags.writeable:
        # The common case, without catch_warnings' cost (about 10 us, paid per
        # block: 5% of a pass at the CIFAR-100-LT shape).
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        # Read-only blocks (views of a read-only memmap) are never written to.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(array)


class RowStream:
    """Serve float32 blocks of rows of ``X`` on ``device``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        A NumPy array, ``np.memmap`` or other 2-D array-like that supports
        ``X[slice]`` and ``X[sorted_int_array]``.
    device : torch.device
    max_rows : int
        The largest block that will be asked for.
    resident : bool or None, default=None
        On CUDA, whether to upload ``X`` once; ``None`` decides from the free
        device memory. Ignored on the CPU.
    """

    def __init__(self, X, device, *, max_rows, resident=None):
        self.X = X
        self.device = device
        self.max_rows = max_rows
        n_samples, n_features = X.shape
        if device.type == "cpu":
            self.mode = "host"
            return
        if resident is None:
            free, _ = torch.cuda.mem_get_info(device)
            resident = 4 * n_samples * n_features <= _RESIDENT_FRACTION * free
        self.mode = "resident" if resident else "pinned"
        if self.mode == "resident":
            self._device_X = torch.empty(
                (n_samples, n_features), dtype=torch.float32, device=device
            )
            for start in range(0, n_samples, max_rows):
                rows = slice(start, start + max_rows)
                self._device_X[rows].copy_(_as_tensor(host_block(X, rows)))

    def blocks(self, selections, device_selections=None):
        """Yield one float32 tensor on the device per entry of ``selections``.

        Parameters
        ----------
        selections : sequence of slice or ndarray of int
            Rows of each block; index arrays must be sorted (it keeps reads
            of a memmap sequential) and at most ``max_rows`` long.
        device_selections : sequence of slice or torch.Tensor, default=None
            The same rows as slices or index tensors already on the device,
            used when ``X`` resides there (saves a transfer per block).

        Yields
        ------
        block : torch.Tensor of shape (n_rows, n_features)
            Valid until the next block is requested.
        """
        if self.mode == "host":
            for rows in selections:
                yield _as_tensor(host_block(self.X, rows))
        elif self.mode == "resident":
            for k, rows in enumerate(selections):
                if device_selections is not None:
                    rows = device_selections[k]
                elif not isinstance(rows, slice):
                    rows = torch.from_numpy(rows).to(self.device)
                yield self._device_X[rows]
        else:
            yield from self._pinned_blocks(selections)

    def _pinned_blocks(self, selections):
        """Double-buffered host-to-device copies on a side stream."""
        device = self.device
        n_features = self.X.shape[1]
        shape = (self.max_rows, n_features)
        host = [torch.empty(shape, dtype=torch.float32, pin_memory=True) for _ in "ab"]
        on_device = [
            torch.empty(shape, dtype=torch.float32, device=device) for _ in "ab"
        ]
        compute = torch.cuda.current_stream(device)
        copier = torch.cuda.Stream(device)
        copied = [None, None]  # H2D copy into the slot finished (host may refill)
        consumed = [None, None]  # compute done reading the slot's device buffer

        def issue(k):
            slot = k % 2
            if copied[slot] is not None:
                copied[slot].synchronize()
            rows = self.X[selections[k]]
            n_rows = rows.shape[0]
            np.copyto(host[slot].numpy()[:n_rows], rows, casting="same_kind")
            with torch.cuda.stream(copier):
                if consumed[slot] is not None:
                    copier.wait_event(consumed[slot])
                on_device[slot][:n_rows].copy_(host[slot][:n_rows], non_blocking=True)
                copied[slot] = torch.cuda.Event()
                copied[slot].record(copier)
            return n_rows

        n_blocks = len(selections)
        try:
            sizes = [issue(k) for k in range(min(2, n_blocks))]
            for k in range(n_blocks):
                slot = k % 2
                compute.wait_event(copied[slot])
                yield on_device[slot][: sizes[k]]
                consumed[slot] = torch.cuda.Event()
                consumed[slot].record(compute)
                if k + 2 < n_blocks:
                    sizes.append(issue(k + 2))
        finally:
            # The device buffers belong to the compute stream's pool; copies
            # issued ahead on the side stream must finish before that stream
            # can reuse them, also when the consumer stops early.
            compute.wait_stream(copier)
