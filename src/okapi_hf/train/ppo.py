"""PPO for language models, owned here because trl 1.x removed its PPO trainer (Okapi used trlx's).

One iteration = sample ``num_rollouts`` responses from the policy, score them, then ``ppo_epochs``
passes of clipped policy and value updates over those rollouts (``ppo_math`` holds the arithmetic).
The policy carries a scalar value head on its last hidden state (trlx's layout, so one forward gives
log-probs and values); a frozen copy of the starting policy is the KL reference; the reward is the
reward model's score on prompt+response, plus optional reward functions with trl's signature.
``PPOTrainer`` subclasses ``transformers.Trainer`` only for its plumbing (accelerator, DDP/FSDP/DeepSpeed
set-up from ``accelerate launch``, optimizer and scheduler, logging callbacks) and owns ``train()``.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, set_seed
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.utils import add_fused_lm_head

from okapi_hf.errors import ConfigError, DataError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.prompts import encode, format_prompt
from okapi_hf.train.ppo_config import PPOConfig
from okapi_hf.train.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    masked_mean,
    policy_loss,
    token_rewards,
    value_loss,
    whiten,
)
from okapi_hf.train.utils import freeze_bottom_layers

RewardFunc = Callable[..., Sequence[float]]
STATE_FILE = "ppo_state.json"


def response_logprobs(
    model, input_ids, attention_mask, position_ids, prompt_width: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probs, entropy or None) of the tokens from column ``prompt_width`` on, ``[B, R]`` each.

    ``model`` carries trl's fused LM head (``add_fused_lm_head``): the head runs in tiles and only the
    per-token numbers come back, so no ``[batch, sequence, vocabulary]`` logits tensor is ever made
    (Gemma's vocabulary has 262,144 tokens: 1 MB of float32 logits per token). Prompt positions are
    labelled -100 and skipped.
    """
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :prompt_width] = -100
    kwargs = {"position_ids": position_ids} if position_ids is not None else {}
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True, **kwargs
    )
    entropy = out.entropy[:, prompt_width - 1 :] if out.entropy is not None else None
    return out.log_probs[:, prompt_width - 1 :], entropy


class PolicyWithValueHead(nn.Module):
    """A causal LM plus a linear value head on its last hidden state: one forward, log-probs and values.

    The policy's fused LM head returns per-token log-probabilities and entropy instead of logits; the
    value head reads the backbone's last hidden state, caught on its way to the LM head.
    """

    def __init__(self, policy: PreTrainedModel, temperature: float = 1.0):
        super().__init__()
        add_fused_lm_head(policy, temperature=temperature, outputs=("log_probs", "entropy"))
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.value_head.bias)
        self.config = policy.config  # what Trainer and accelerate look up on a model
        self._hidden: list[torch.Tensor] | None = None  # a list during forward only, not while generating
        policy.base_model.register_forward_hook(self._catch_hidden)

    def _catch_hidden(self, module, args, output) -> None:
        if self._hidden is not None:
            self._hidden.append(output[0])

    def forward(self, input_ids, attention_mask, position_ids=None, *, prompt_width: int):
        """(log-probs, values, entropy) of the response tokens from column ``prompt_width`` on."""
        self._hidden = []
        try:
            logprobs, entropy = response_logprobs(
                self.policy, input_ids, attention_mask, position_ids, prompt_width
            )
            hidden = self._hidden[-1][:, prompt_width - 1 : -1]
        finally:
            self._hidden = None
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return logprobs, values, entropy

    # generation helpers (trl's unwrap_model_for_generation) toggle checkpointing on the model they get, by
    # transformers' old names; the policy is asked by the new ones, as the old ones warn
    @property
    def is_activation_checkpointing(self) -> bool:
        return self.policy.is_activation_checkpointing

    is_gradient_checkpointing = is_activation_checkpointing

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
        self.policy.activation_checkpointing_enable(gradient_checkpointing_kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self.policy.activation_checkpointing_disable()


@dataclass
class Rollouts:
    """One iteration's samples, left-padded prompts then right-padded responses, on one process."""

    input_ids: torch.Tensor  # [B, P + R]
    attention_mask: torch.Tensor  # [B, P + R]
    response_mask: torch.Tensor  # [B, R] 1 for response tokens up to and including EOS
    logprobs: torch.Tensor  # [B, R] under the policy that sampled them
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor  # [B]
    entropy: torch.Tensor  # [B] mean per-token entropy of each response


class PPOTrainer(Trainer):
    """PPO with a value-headed policy, a frozen reference and a reward model (and/or reward functions).

    ``train_dataset`` holds Okapi RL prompts (``instruction``, optional ``input``, ``lang``) or a ready
    ``prompt`` column; ``reward_funcs`` take trl's signature ``f(prompts, completions, **columns)``.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        args: PPOConfig,
        processing_class: PreTrainedTokenizerBase,
        train_dataset,
        reward_model: PreTrainedModel | None = None,
        reward_funcs: Sequence[RewardFunc] = (),
        reward_weights: Sequence[float] | None = None,
        eval_dataset=None,
        ref_model: PreTrainedModel | None = None,
        callbacks=None,
    ):
        if reward_model is None and not reward_funcs:
            raise ConfigError("PPOTrainer needs a reward_model or at least one reward function")
        if reward_weights is not None and len(reward_weights) != len(reward_funcs):
            raise ConfigError(
                f"{len(reward_funcs)} reward functions but {len(reward_weights)} reward_weights"
            )
        tokenizer = processing_class
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.ref_model = ref_model if ref_model is not None else copy.deepcopy(model)
        self.ref_model.requires_grad_(False).eval()
        if args.num_unfrozen_layers is not None:
            freeze_bottom_layers(model, args.num_unfrozen_layers)
        if args.activation_checkpointing:
            model.activation_checkpointing_enable(args.activation_checkpointing_kwargs)
        self.reward_model = reward_model.eval().requires_grad_(False) if reward_model is not None else None
        self.reward_funcs = list(reward_funcs)
        self.reward_weights = list(reward_weights or [1.0] * len(self.reward_funcs))
        self._takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters
        add_fused_lm_head(self.ref_model, temperature=args.temperature)  # log-probs without logits
        train_dataset = self._tokenize(train_dataset, tokenizer, args, "train")
        if eval_dataset is not None and len(eval_dataset):  # an empty split means no evaluation
            eval_dataset = self._tokenize(eval_dataset, tokenizer, args, "eval")
        else:
            eval_dataset = None
        set_seed(args.seed)  # the value head is drawn here, before Trainer seeds: same seed, same run
        super().__init__(
            model=PolicyWithValueHead(model, temperature=args.temperature),
            args=args,
            data_collator=lambda rows: rows,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        world = self.accelerator.num_processes
        if args.num_rollouts % world:
            raise ConfigError(f"num_rollouts={args.num_rollouts} must divide by the {world} processes")
        self.local_rollouts = args.num_rollouts // world
        step_rows = args.per_device_train_batch_size * args.gradient_accumulation_steps
        if self.local_rollouts % step_rows:
            raise ConfigError(
                f"each process samples {self.local_rollouts} rollouts per iteration, which must divide by "
                f"per_device_train_batch_size x gradient_accumulation_steps = {step_rows}"
            )
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # shard the frozen models like the policy
            from trl.models.utils import prepare_deepspeed, prepare_fsdp

            prep = prepare_deepspeed if self.is_deepspeed_enabled else prepare_fsdp
            self.ref_model = prep(self.ref_model, self.accelerator)
            if self.reward_model is not None:
                self.reward_model = prep(self.reward_model, self.accelerator)
        else:
            self.ref_model.to(self.accelerator.device)
            if self.reward_model is not None:
                self.reward_model.to(self.accelerator.device)
        self.kl_ctl = (
            FixedKLController(args.init_kl_coef)
            if args.target_kl is None
            else AdaptiveKLController(args.init_kl_coef, args.target_kl, args.kl_horizon)
        )

    # -- data -----------------------------------------------------------------------------------------
    @staticmethod
    def _tokenize(dataset, tokenizer, args: PPOConfig, name: str):
        """Okapi prompt text, tokenized and left-truncated to ``max_prompt_length`` (truncations counted)."""
        columns = dataset.column_names
        if "prompt" not in columns and "instruction" not in columns:
            raise DataError(f"{name} prompts need a `prompt` or an `instruction` column, got {columns}")

        def tokenize(row, index):
            text = row["prompt"] if "prompt" in row else format_prompt(row["instruction"], row.get("input"))
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{name} prompt row {row.get('id', index)}: empty prompt")
            ids = encode(tokenizer, text)
            truncated = len(ids) > args.max_prompt_length
            if truncated:  # Okapi keeps the end of a long prompt, where the response begins
                keep = ids[-args.max_prompt_length :]
                bos = tokenizer.bos_token_id
                if bos is not None and ids[0] == bos:
                    keep = [bos, *keep[1:]]
                ids = keep
            return {"prompt_text": text, "prompt_ids": ids, "truncated": truncated}

        return dataset.map(tokenize, with_indices=True, desc=f"tokenizing {name} prompts")

    def prompt_summary(self) -> str:
        """How many prompts each split has and how many were left-truncated (a line per split)."""
        lines = []
        for name, dataset in (("train", self.train_dataset), ("validation", self.eval_dataset)):
            if dataset is not None:
                cut = sum(dataset["truncated"])
                lines.append(
                    f"- {name}: {len(dataset)} prompts, {cut} left-truncated to "
                    f"{self.args.max_prompt_length} tokens"
                )
        return "\n".join(lines)

    def _prompt_rows(self, iteration: int, per_epoch: int) -> list[dict]:
        """This process's prompts for one iteration: a seeded shuffle per epoch, so a resumed run sees the same."""
        epoch, index = divmod(iteration, per_epoch)
        order = torch.randperm(
            len(self.train_dataset), generator=torch.Generator().manual_seed(self.args.seed + epoch)
        )
        start = index * self.args.num_rollouts + self.accelerator.process_index * self.local_rollouts
        return self.train_dataset.select(order[start : start + self.local_rollouts].tolist()).to_list()

    # -- rollouts -------------------------------------------------------------------------------------
    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        pad = self.processing_class.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        return ids.to(self.accelerator.device), mask.to(self.accelerator.device)

    def _position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        if not self._takes_position_ids:
            return None  # BLOOM's ALiBi reads positions from the attention mask
        return (attention_mask.cumsum(-1) - 1).clamp(min=0)

    def _forward(self, model, input_ids, attention_mask, prompt_width: int):
        """(log-probs, values or None, entropy or None) of the response tokens from column ``prompt_width``.

        ``model`` is the value-headed policy (values and entropy too) or the frozen reference.
        """
        position_ids = self._position_ids(attention_mask)
        if model is self.ref_model:
            logprobs, _ = response_logprobs(model, input_ids, attention_mask, position_ids, prompt_width)
            return logprobs, None, None
        return model(input_ids, attention_mask, position_ids, prompt_width=prompt_width)

    def _response_mask(self, responses: torch.Tensor) -> torch.Tensor:
        """1 up to and including the first EOS; everything after it is padding."""
        is_eos = responses == self.processing_class.eos_token_id
        after_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0
        return (~after_eos).long()

    @torch.no_grad()
    def _rollout(self, rows: list[dict]) -> tuple[Rollouts, dict[str, float]]:
        args, tok = self.args, self.processing_class
        gen = {
            "do_sample": True,
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "max_new_tokens": args.max_new_tokens,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
            "min_new_tokens": 1,
            # sharded weights are gathered layer by layer, so every process steps until all have finished
            "synced_gpus": self.is_deepspeed_enabled or self.is_fsdp_enabled,
        }
        parts: dict[str, list] = defaultdict(list)
        timings = {"time/generate": 0.0, "time/forward": 0.0, "time/score": 0.0}
        self.model.eval()
        for start in range(0, len(rows), args.chunk_size):
            chunk = rows[start : start + args.chunk_size]
            t0 = time.perf_counter()
            prompt_ids, prompt_mask = self._left_pad([r["prompt_ids"] for r in chunk])
            with unwrap_model_for_generation(
                self.model, self.accelerator, gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs
            ) as unwrapped:
                out = unwrapped.policy.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **gen)
            timings["time/generate"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            width = prompt_ids.shape[1]
            responses = out[:, width:]
            response_mask = self._response_mask(responses)
            responses = responses.masked_fill(response_mask == 0, tok.pad_token_id)
            input_ids = torch.cat([prompt_ids, responses], dim=1)
            attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
            logprobs, values, entropy = self._forward(self.model, input_ids, attention_mask, width)
            ref_logprobs, _, _ = self._forward(self.ref_model, input_ids, attention_mask, width)
            timings["time/forward"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            scores = self._score(chunk, input_ids, attention_mask, responses, response_mask)
            timings["time/score"] += time.perf_counter() - t0
            for name, value in (
                ("input_ids", input_ids),
                ("attention_mask", attention_mask),
                ("response_mask", response_mask),
                ("logprobs", logprobs * response_mask),
                ("ref_logprobs", ref_logprobs * response_mask),
                ("values", values.float() * response_mask),
                ("scores", scores),
                ("entropy", masked_mean(entropy, response_mask, dim=1)),
            ):
                parts[name].append(value)
        merged = {}
        for name, tensors in parts.items():
            if tensors[0].dim() == 1:
                merged[name] = torch.cat(tensors)
                continue
            width = max(t.shape[1] for t in tensors)  # chunks differ in prompt and response widths
            merged[name] = torch.cat([self._align(name, t, width) for t in tensors])
        return Rollouts(**merged), timings

    def _align(self, name: str, t: torch.Tensor, width: int) -> torch.Tensor:
        """Pad a chunk to a common width: sequences at the left of the prompt, response tensors at the right."""
        missing = width - t.shape[1]
        if not missing:
            return t
        value = self.processing_class.pad_token_id if name == "input_ids" else 0
        filler = torch.full((t.shape[0], missing), value, dtype=t.dtype, device=t.device)
        return torch.cat([filler, t] if name in ("input_ids", "attention_mask") else [t, filler], dim=1)

    def _score(self, rows, input_ids, attention_mask, responses, response_mask) -> torch.Tensor:
        """Reward-model score on the prompt+response (right-aligned, as it was trained) plus reward functions."""
        scores = torch.zeros(len(rows), device=input_ids.device)
        if self.reward_model is not None:
            lengths = attention_mask.sum(1)
            width = int(lengths.max())
            pad = self.processing_class.pad_token_id
            ids = torch.full((len(rows), width), pad, dtype=input_ids.dtype, device=input_ids.device)
            mask = torch.zeros_like(ids)
            for i in range(len(rows)):
                real = input_ids[i][attention_mask[i].bool()]
                ids[i, : len(real)] = real
                mask[i, : len(real)] = 1
            scores += self.reward_model(input_ids=ids, attention_mask=mask).logits[:, 0].float()
        if self.reward_funcs:
            tok = self.processing_class
            completion_ids = [r[m.bool()].tolist() for r, m in zip(responses, response_mask, strict=True)]
            columns = {k: [r[k] for r in rows] for k in rows[0] if k not in ("prompt_ids", "prompt_text")}
            kwargs = {**columns, "completion_ids": completion_ids}
            prompts = [r["prompt_text"] for r in rows]
            completions = tok.batch_decode(completion_ids, skip_special_tokens=True)
            for func, weight in zip(self.reward_funcs, self.reward_weights, strict=True):
                values = func(prompts=prompts, completions=completions, **kwargs)
                scores += weight * torch.tensor(
                    [math.nan if v is None else float(v) for v in values], device=scores.device
                )
        return scores

    # -- the loop -------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | None = None, **kwargs) -> dict[str, float]:
        """Iterations of rollout, scoring and ``ppo_epochs`` of clipped updates; returns the last logs."""
        args = self.args
        per_epoch = len(self.train_dataset) // args.num_rollouts
        if per_epoch == 0:
            raise DataError(
                f"{len(self.train_dataset)} training prompts are fewer than num_rollouts={args.num_rollouts} "
                "sampled per iteration: lower num_rollouts or add prompts"
            )
        total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)
        minibatches = self.local_rollouts // args.per_device_train_batch_size
        self.create_optimizer_and_scheduler(
            total * args.ppo_epochs * minibatches // args.gradient_accumulation_steps
        )
        # the scheduler stays unprepared: accelerate would step it once per process
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.accelerator.register_for_checkpointing(self.lr_scheduler)  # saved and restored with the state
        self.model_wrapped = self.model
        self.state.max_steps = total
        start = 0
        if resume_from_checkpoint:
            start = self._load_checkpoint(resume_from_checkpoint)
        self.control = self.callback_handler.on_train_begin(args, self.state, self.control)
        logs: dict[str, float] = {}
        for iteration in range(start, total):
            rows = self._prompt_rows(iteration, per_epoch)
            t0 = time.perf_counter()
            rollouts, timings = self._rollout(rows)
            t1 = time.perf_counter()
            stats = self._update(rollouts)
            timings["time/update"] = time.perf_counter() - t1
            self.state.global_step = iteration + 1
            self.state.epoch = (iteration + 1) / per_epoch
            logs = {**self._iteration_logs(rollouts, stats), **timings}
            logs["time/iteration"] = time.perf_counter() - t0
            if (iteration + 1) % max(int(args.logging_steps), 1) == 0 or iteration + 1 == total:
                self.log(logs)
            if (
                args.save_strategy == "steps"
                and args.save_steps
                and (iteration + 1) % int(args.save_steps) == 0
            ):
                self._save_checkpoint_state(iteration + 1)
            self.control = self.callback_handler.on_step_end(args, self.state, self.control)  # progress bar
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        return logs

    def _update(self, ro: Rollouts) -> dict[str, list[float]]:
        args = self.args
        kl_coef = self.kl_ctl.value
        rewards, kl = token_rewards(
            ro.scores, ro.logprobs, ro.ref_logprobs, ro.response_mask, kl_coef, args.reward_clip
        )
        advantages, returns = gae(rewards, ro.values, ro.response_mask, args.gamma, args.lam)
        if args.whiten_advantages:
            advantages = whiten(advantages, ro.response_mask) * ro.response_mask
        stats: dict[str, list[float]] = defaultdict(list)
        seq_kl = self.accelerator.gather(kl.sum(1)).mean().item()
        stats["objective/kl"].append(seq_kl)
        stats["objective/kl_coef"].append(kl_coef)
        stats["objective/non_score_reward"].append(
            self.accelerator.gather((-kl_coef * kl).sum(1)).mean().item()
        )
        stats["returns/mean"].append(masked_mean(returns, ro.response_mask).item())
        stats["advantages/mean"].append(masked_mean(advantages, ro.response_mask).item())
        prompt_width = ro.input_ids.shape[1] - ro.response_mask.shape[1]
        self.model.train()
        n, size = len(ro.scores), args.per_device_train_batch_size
        generator = torch.Generator().manual_seed(args.seed + self.state.global_step)
        for _ in range(args.ppo_epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, size):
                idx = order[start : start + size].to(ro.input_ids.device)
                mask = ro.response_mask[idx]
                with self.accelerator.accumulate(self.model):
                    logprobs, values, _ = self._forward(
                        self.model, ro.input_ids[idx], ro.attention_mask[idx], prompt_width
                    )
                    pg, pg_stats = policy_loss(
                        logprobs, ro.logprobs[idx], advantages[idx], mask, args.cliprange
                    )
                    vf, vf_stats = value_loss(
                        values.float(), ro.values[idx], returns[idx], mask, args.cliprange_value
                    )
                    loss = pg + args.vf_coef * vf
                    self.accelerator.backward(loss)
                    if self.accelerator.sync_gradients and args.max_grad_norm:
                        self.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                    self.optimizer.step()
                    if self.accelerator.sync_gradients:
                        self.lr_scheduler.step()
                    self.optimizer.zero_grad()
                stats["loss/policy"].append(pg.item())
                stats["loss/value"].append(vf.item())
                stats["loss/total"].append(loss.item())
                stats["policy/clipfrac"].append(pg_stats["clipfrac"])
                stats["policy/approx_kl"].append(pg_stats["approx_kl"])
                stats["value/clipfrac"].append(vf_stats["value_clipfrac"])
        self.kl_ctl.update(seq_kl, args.num_rollouts)
        return stats

    def _iteration_logs(self, ro: Rollouts, stats: dict[str, list[float]]) -> dict[str, float]:
        gather = self.accelerator.gather
        scores = gather(ro.scores)
        # one collective for every per-process statistic, not one per key
        local = torch.tensor([sum(v) / len(v) for v in stats.values()], device=self.accelerator.device)
        means = gather(local[None]).mean(0).tolist()
        logs = dict(zip(stats, means, strict=True))
        logs.update(
            {
                "reward/score": scores.mean().item(),
                "reward/score_std": scores.std().item() if len(scores) > 1 else 0.0,
                "objective/rlhf_reward": logs["objective/non_score_reward"] + scores.mean().item(),
                "objective/entropy": gather(ro.entropy).mean().item(),
                "response_length": gather(ro.response_mask.sum(1).float()).mean().item(),
                "learning_rate": self.lr_scheduler.get_last_lr()[0],
            }
        )
        return logs

    # -- evaluation, checkpoints, saving --------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Mean reward and response length of sampled responses to the validation prompts."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            return {}
        rows = list(dataset)
        if not rows:
            return {}
        # every process must run as many forwards as the others (DDP and FSDP sync inside them), so the
        # shares are padded to equal size and the padding is cut after gathering, in the original order
        with self.accelerator.split_between_processes(rows, apply_padding=True) as share:
            rollouts, _ = self._rollout(share)
        scores = self.accelerator.gather(rollouts.scores)[: len(rows)]
        lengths = self.accelerator.gather(rollouts.response_mask.sum(1).float())[: len(rows)]
        metrics = {
            f"{metric_key_prefix}_score": scores.mean().item(),
            f"{metric_key_prefix}_response_length": lengths.mean().item(),
        }
        self.log(metrics)
        return metrics

    def _save_checkpoint_state(self, iteration: int) -> None:
        folder = Path(self.args.output_dir) / f"checkpoint-{iteration}"
        self.accelerator.save_state(str(folder))
        if self.is_world_process_zero():
            state = {
                "iteration": iteration,
                "kl_coef": self.kl_ctl.value,
                "log_history": self.state.log_history,
            }
            atomic_write_text(folder / STATE_FILE, json.dumps(state, indent=2))  # last: marks it whole
            self._rotate_checkpoints()
        self.accelerator.wait_for_everyone()

    def _rotate_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        folders = sorted(
            Path(self.args.output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
        )
        for old in folders[:-limit] if limit else []:
            shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self, folder: str) -> int:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            raise ConfigError(f"{folder} is not a PPO checkpoint: it has no {STATE_FILE}")
        self.accelerator.load_state(folder)
        state = json.loads(path.read_text())
        self.kl_ctl.value = state["kl_coef"]
        self.state.log_history = state["log_history"]
        self.state.global_step = state["iteration"]
        return state["iteration"]

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The policy alone, as a plain causal LM in safetensors (the value head lives in checkpoints)."""
        out = Path(output_dir or self.args.output_dir)
        state = self.accelerator.get_state_dict(self.model)  # gathers FSDP / ZeRO-3 shards
        if self.is_world_process_zero():
            policy = self.accelerator.unwrap_model(self.model).policy
            weights = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
            policy.save_pretrained(out, state_dict=weights, safe_serialization=True)
            self.processing_class.save_pretrained(out)
        self.accelerator.wait_for_everyone()
