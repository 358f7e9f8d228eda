"""Write stories with a GPT trained by train_gpt.py, streaming tokens as they come.

    python examples/sample_gpt.py --prompt "Once upon a time" --temperature 0.8 --top-k 40
    python examples/sample_gpt.py --checkpoint checkpoints/gpt.safetensors --samples 3

The checkpoint holds the model's config and the path of its tokenizer (saved beside it)."""

from __future__ import annotations

import sys
from pathlib import Path

import smolgrad as sg

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py and gpt.py, also under PYTHONSAFEPATH=1
from common import parser
from gpt import EOT, GPT, GPTConfig, generate, load_tokenizer, stream_text


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--checkpoint", default="checkpoints/gpt.safetensors", help="a train_gpt.py checkpoint (default: %(default)s)")
    p.add_argument("--prompt", default="Once upon a time", help="the start of each story (default: %(default)r)")
    p.add_argument("--samples", type=int, default=1, help="stories to write (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=300, help="at most this many tokens per story (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0: greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=40, help="sample among the k likeliest tokens; 0: all (default: %(default)s)")
    args = p.parse_args(argv)

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise SystemExit(f"no checkpoint at {checkpoint}: train one with examples/train_gpt.py, or pass --checkpoint PATH")
    state = sg.load(checkpoint, device=args.device)
    tokenizer_path = Path(state["tokenizer"])
    if not tokenizer_path.is_file():  # the checkpoint was moved: look beside it
        tokenizer_path = checkpoint.parent / tokenizer_path.name
    if not tokenizer_path.is_file():
        raise SystemExit(f"the checkpoint's tokenizer {state['tokenizer']} is missing (also beside the checkpoint)")
    tok = load_tokenizer(tokenizer_path)
    model = GPT(GPTConfig.from_dict(state["config"])).to(args.device)
    model.load_state_dict(state["model"])
    device = model.tok_emb.weight.device
    print(f"GPT after {state['step']} steps, {model.num_parameters():,} parameters, on '{device}'", flush=True)

    for i in range(args.samples):
        print(f"\n--- sample {i + 1} ---")
        sys.stdout.write(args.prompt)
        ids = generate(model, tok.encode(args.prompt).ids, args.max_new_tokens, args.temperature, args.top_k or None,
                       seed=args.seed + i, stop_id=tok.token_to_id(EOT), device=device)
        stream_text(tok, ids, lambda s: (sys.stdout.write(s), sys.stdout.flush()))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
