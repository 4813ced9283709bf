#!/usr/bin/env python3
"""One PPO iteration in PyTorch + transformers, timed per phase: the reference workload of
`cargo xtask bench ppo --reference`, the same as ppo-rs's `ppo_iteration_bench` example
(crates/ppo-core/examples/ppo_iteration_bench.rs), written the way the seed script and TRL do
it.

    python bench/reference/ppo_iteration.py [--shape tiny|small|q06] [--batch B]
        [--prompt-tokens P] [--new-tokens T] [--iters N] [--threads K]

A randomly initialised Qwen3ForCausalLM policy, its frozen copy as reference, and a critic made
of a copy of the policy's backbone plus a linear value head. Per iteration: `generate` (sampling
at temperature 1, no top-k/top-p, KV cache, EOS never ended: every response has T tokens);
log-probabilities of policy and reference and the critic's values without autograd; k1
KL-shaped rewards with the score on the last token; GAE (gamma 1, lambda 0.95); whitened
advantages; 4 PPO epochs of one minibatch of B rows: clipped policy loss, clipped value loss,
each model with global-norm clipping at 1 and its own AdamW step. One JSON line per iteration
after a warm-up iteration.
"""

import argparse
import copy
import json
import resource
import time

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

SHAPES = {
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=10000.0),
    "small": dict(vocab_size=8192, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=64, rope_theta=10000.0),
    "q06": dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                rope_theta=1000000.0),
}

CLIP, CLIP_VALUE, KL_COEF, GAMMA, LAM, VF_COEF, EPOCHS, LR = 0.2, 0.2, 0.05, 1.0, 0.95, 0.5, 4, 1e-6


class Critic(torch.nn.Module):
    def __init__(self, backbone, hidden):
        super().__init__()
        self.model = backbone
        self.score = torch.nn.Linear(hidden, 1, bias=False)

    def forward(self, ids, mask):
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.score(hidden).squeeze(-1)


def response_logprobs(model, ids, mask, prompt_len):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, prompt_len - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--matmul-peak", action="store_true",
                        help="first print {\"matmul_gflops\": G}, the best 1024^3 f32 matmul")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.matmul_peak:
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        best = float("inf")
        for _ in range(6):
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
        print(json.dumps({"matmul_gflops": 2 * 1024**3 / best / 1e9}), flush=True)
    torch.manual_seed(0)
    transformers.utils.logging.set_verbosity_error()
    B, P, T = args.batch, args.prompt_tokens, args.new_tokens
    shape = SHAPES[args.shape]
    config = Qwen3Config(
        **shape,
        max_position_embeddings=max(P + T, 512),
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        initializer_range=0.02,
        attention_bias=False,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
    )
    started = time.perf_counter()
    policy = Qwen3ForCausalLM(config).float()
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    critic = Critic(copy.deepcopy(policy.model), shape["hidden_size"])
    # PyTorch's multi-tensor AdamW holds temporaries the size of the model; at the q06 shape
    # that does not fit in 24 GB beside three models and two optimiser states, so it uses the
    # per-parameter loop there.
    foreach = args.shape != "q06"
    policy_optim = torch.optim.AdamW(policy.parameters(), lr=LR, weight_decay=0.0, foreach=foreach)
    critic_optim = torch.optim.AdamW(critic.parameters(), lr=LR, weight_decay=0.0, foreach=foreach)
    build = time.perf_counter() - started
    V = shape["vocab_size"]
    for it in range(args.iters + 1):
        prompts = torch.randint(1, V, (B, P))
        prompt_mask = torch.ones_like(prompts)
        t0 = time.perf_counter()
        policy.eval()
        with torch.no_grad():
            ids = policy.generate(
                input_ids=prompts,
                attention_mask=prompt_mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=T,
                min_new_tokens=T,
                use_cache=True,
                pad_token_id=0,
                eos_token_id=None,
            )
        assert ids.shape == (B, P + T), ids.shape
        t1 = time.perf_counter()
        mask = torch.ones_like(ids)
        with torch.no_grad():
            old_logprobs = response_logprobs(policy, ids, mask, P)
            ref_logprobs = response_logprobs(reference, ids, mask, P)
            values = critic(ids, mask)[:, P - 1 : -1]
            # the score: cheap and deterministic (its cost is not what is measured)
            score = (ids[:, P:] % 7).sum(-1).remainder(10).float() / 10.0
            rewards = -KL_COEF * (old_logprobs - ref_logprobs)
            rewards[:, -1] += score
            advantages = torch.zeros_like(rewards)
            last = torch.zeros(B)
            for t in reversed(range(T)):
                next_value = values[:, t + 1] if t + 1 < T else torch.zeros(B)
                delta = rewards[:, t] + GAMMA * next_value - values[:, t]
                last = delta + GAMMA * LAM * last
                advantages[:, t] = last
            returns = advantages + values
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        t2 = time.perf_counter()
        policy.train()
        for _ in range(EPOCHS):
            logprobs = response_logprobs(policy, ids, mask, P)
            ratio = torch.exp(logprobs - old_logprobs)
            loss = torch.max(
                -advantages * ratio, -advantages * ratio.clamp(1 - CLIP, 1 + CLIP)
            ).mean()
            policy_optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            policy_optim.step()
            policy_optim.zero_grad(set_to_none=True)  # the gradients are not kept meanwhile

            new_values = critic(ids, mask)[:, P - 1 : -1]
            clipped = values + (new_values - values).clamp(-CLIP_VALUE, CLIP_VALUE)
            value_loss = VF_COEF * 0.5 * torch.max(
                (new_values - returns) ** 2, (clipped - returns) ** 2
            ).mean()
            critic_optim.zero_grad(set_to_none=True)
            value_loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
            critic_optim.step()
            critic_optim.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if it == 0:
            continue  # warm-up
        print(json.dumps({
            "impl": "pytorch",
            "backend": f"torch {torch.__version__}",
            "shape": args.shape,
            "threads": torch.get_num_threads(),
            "batch": B,
            "prompt_tokens": P,
            "new_tokens": T,
            "generate": t1 - t0,
            "score": t2 - t1,
            "update": t3 - t2,
            "total": t3 - t0,
            "build": build,
            "adamw_foreach": foreach,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        }), flush=True)


if __name__ == "__main__":
    main()
