"""Host memory: a loss that never builds full-vocabulary logits for prompt tokens, freed memory handed
back to the OS, and per-stage peak resident memory for the demo summary."""
from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from contextlib import contextmanager


class PlanOnlyLoss:
    """Trainer mixin: the loss covers only plan tokens (labels != -100), so only their logits are needed.
    The stock path projects every position onto the vocabulary and upcasts to fp32: for SmolLM2
    (49,152 tokens) at batch 4 x 1,000 tokens that is ~2 GB of logits and their gradients, for the
    ~15% of positions that carry a label. Same sum of token losses over the same ``num_items_in_batch``.
    A model with a decoder/head split runs them in turn, keeping each row's plan positions; a model wrapped
    for DDP (whose forward must run) gets the positions any row needs as ``logits_to_keep``; models that
    scale or cap logits, or take neither way, take the stock path.

    ``system_prompt_gradient = False`` (batches whose samples carry ``query_start``): the system prompt
    (tools, instructions, in-context examples) runs first without autograd and the rest, from the user's
    query on, reads its cached keys and values, so backward covers only the query and the plan. Same loss;
    the gradient loses the part that flows through the system prompt's activations (an approximation that
    makes the demo's CPU fine-tune about twice as fast). Padded batches of one process only."""

    system_prompt_gradient = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        from .models import cache_argument, forward_accepts
        inputs = dict(inputs)
        query_start = inputs.pop("query_start", None)
        inner = getattr(model, "module", model)  # DDP holds the model in .module
        decoder = getattr(model, "get_decoder", lambda: None)()
        head = getattr(model, "get_output_embeddings", lambda: None)()
        split = decoder is not None and head is not None
        config = getattr(inner, "config", None)
        scaled = getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None)
        positional = forward_accepts(inner, "logits_to_keep")
        if return_outputs or scaled or "labels" not in inputs or not (split or positional):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")[:, 1:]
        keep = labels != -100
        # The Trainer's mixed precision wraps model.forward, which the split path skips: enter it here, or the
        # decoder runs in fp32 on CPU (2-3x slower) and bf16 attention kernels meet fp32 weights on CUDA.
        with self.accelerator.autocast():
            start = 0 if self.system_prompt_gradient or query_start is None or not split else int(query_start.min())
            if not split:
                positions = keep.any(0).nonzero().squeeze(1)
                logits = model(**inputs, logits_to_keep=positions).logits
                labels, keep = labels[:, positions], keep[:, positions]
                logits = logits[keep].float()
            else:
                if start:
                    from transformers import DynamicCache
                    cache = {cache_argument(decoder): DynamicCache(config=decoder.config)}  # filled in place
                    with torch.no_grad():
                        decoder(**{k: v[:, :start] for k, v in inputs.items()}, **cache, use_cache=True)
                    rest = {k: (v if k == "attention_mask" else v[:, start:]) for k, v in inputs.items()}
                    hidden = decoder(**rest, **cache, use_cache=True).last_hidden_state
                    labels, keep = labels[:, start:], keep[:, start:]
                else:  # every input but the labels: packed batches carry per-document position_ids (and no cache)
                    hidden = decoder(**inputs).last_hidden_state
                logits = head(hidden[:, :-1][keep]).float()
        loss = torch.nn.functional.cross_entropy(logits, labels[keep], reduction="sum")
        if num_items_in_batch is None:
            return loss / keep.sum().clamp(min=1)
        loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
        if self.args.average_tokens_across_devices:  # the count is all ranks', and DDP averages the ranks' gradients
            loss = loss * self.accelerator.num_processes
        return loss


class CudaPhases:
    """Peak allocated CUDA memory and GPU time of each phase of training, kept over the run: forward (the loss,
    with the micro-batch's loading), backward (with clipping and DDP's gradient all-reduce), optimizer step,
    validation. ``end(phase)`` closes a phase, whose peak is the peak since the previous one closed;
    ``end(None)`` closes a stretch counted as "other" (bookkeeping between phases, checkpoint saving) and
    kept out of the peaks. Times come from CUDA events read once complete, so timing adds no host sync:
    where a phase waits for the host (kernel launches) its time says so."""

    PHASES = ("forward", "backward", "optimizer_step", "validation")

    def __init__(self):
        self.gib = dict.fromkeys(self.PHASES, 0.0)
        self._seconds = dict.fromkeys(self.PHASES + ("other",), 0.0)
        self._last = None  # the event that closed the previous phase
        self._pending: list = []  # (phase, start event, end event) not yet complete

    def end(self, phase: str | None) -> None:
        import torch
        if phase is not None:
            self.gib[phase] = max(self.gib[phase], torch.cuda.max_memory_allocated() / 2**30)
        torch.cuda.reset_peak_memory_stats()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        if self._last is not None:
            self._pending.append((phase or "other", self._last, event))
        self._last = event
        self._collect(wait=False)

    def _collect(self, wait: bool) -> None:
        while self._pending and (wait or self._pending[0][2].query()):
            phase, start, stop = self._pending.pop(0)
            stop.synchronize()
            self._seconds[phase] += start.elapsed_time(stop) / 1000

    @property
    def seconds(self) -> dict[str, float]:
        """GPU seconds of each phase so far (waits for the phases still running)."""
        self._collect(wait=True)
        return dict(self._seconds)

    @property
    def peak(self) -> float:
        return max(self.gib.values())


_M_MMAP_THRESHOLD = -3
_TRAINING_MMAP, _GENERATION_MMAP = 4 << 20, 32 << 20
# oneDNN keeps up to 1,024 compiled bf16 matmuls by default, each with its scratch memory, one per input
# shape: samples of many lengths filled it for the whole of a CPU fine-tune (SmolLM2-135M, 32 micro-batches
# of 500-950 tokens: +0.42 GiB resident at 1,024 entries, +0.24 at 64, the same speed; at 0, 2x slower)
_ONEDNN_CACHE = "64"
_set_threshold: list[int] = []  # the threshold return_freed_memory chose, once it has run


def _mallopt(threshold: int) -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc
        return False


def return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the OS. By default its mmap threshold rises to the
    size of the largest block freed (up to 32 MiB), after which activation-sized tensors come from the
    heap and stay resident once freed: training then keeps the high-water mark of every shape seen
    (16 demo samples in 4 x 2 micro-batches: 4.1 GiB peak resident by default, 2.5 GiB at 4 MiB). 4 MiB, not less:
    at 1 MiB every KV-cache block of a generation step is mapped and unmapped again (see ``generation_heap``).
    Also caps oneDNN's cache of compiled CPU kernels unless the user set ONEDNN_PRIMITIVE_CACHE_CAPACITY."""
    if _mallopt(_TRAINING_MMAP):
        _set_threshold[:] = [_TRAINING_MMAP]
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", _ONEDNN_CACHE)  # read at oneDNN's first use


@contextmanager
def generation_heap():
    """Decode on the heap. transformers' KV cache grows by concatenation every token: at batch 16 its blocks
    are several MiB, which under the 4 MiB threshold were mapped and unmapped each step; the page faults made
    the demo's constrained evaluation 1.4x slower (16 plans: 44 s vs 31 s, 12M vs 2M minor faults, +0.2 GB
    peak without them). The planner's reserved cache (``prefill.py``) writes in place, but the prefill's
    per-prompt caches and the models it cannot serve still allocate per step. A no-op unless
    ``return_freed_memory`` set the threshold; trimmed and restored after."""
    if not _set_threshold:
        yield
        return
    _mallopt(_GENERATION_MMAP)
    try:
        yield
    finally:
        _mallopt(_set_threshold[0])
        release()


def trim_heap() -> None:
    """Hand free heap pages back to the OS (glibc; also pages inside the heap, between live blocks)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def release() -> None:
    """Collect garbage (the Trainer holds reference cycles) and hand freed heap pages back to the OS."""
    gc.collect()
    trim_heap()


class PeakRSS:
    """Samples this process's resident memory in a thread; ``take()`` returns the peak since the last take."""

    def __init__(self, interval_s: float = 0.05):
        import psutil
        self.process, self.interval = psutil.Process(), interval_s
        self.peak, self.lock = self.process.memory_info().rss, threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            rss = self.process.memory_info().rss
            with self.lock:
                self.peak = max(self.peak, rss)
            time.sleep(self.interval)

    def take(self) -> float:
        """Peak GiB since the previous call; the next period starts from the current RSS."""
        with self.lock:
            peak, self.peak = self.peak, self.process.memory_info().rss
        return round(peak / 2**30, 2)
