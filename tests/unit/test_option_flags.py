"""One source for Ollama option names: the spec's ``Options``; the agents' flags and the wire order follow it.

The Rust agents cannot import Python, so their side is read from their source: the wire order in ``body.rs``
and the ``--chimera-*``/``--chimera2-*`` flags in ``cli.rs`` must be exactly the ones derived here. A spec option
with no flag, or a flag with no option, fails this test (the parity test then runs both agents with every option).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.agents.command import _options
from harness.cli import main
from harness.cli_parser import build_parser
from harness.engines.ollama import OPTION_ORDER, request_body
from harness.protocol.flags import OPTION_KINDS, OPTION_NAMES, option_flag, option_flags
from harness.protocol.plan import expand
from harness.protocol.spec import Options, load_spec
from harness.run.agent_line import agent_command

ROOT = Path(__file__).resolve().parents[2]
RUST = ROOT / "harness" / "rust" / "crates"
EVERY_OPTION = {"num_gpu": 80, "num_ctx": 512, "temperature": 0.8, "top_p": 0.9, "top_k": 40}
EVERY_OPTION |= {"repeat_penalty": 1.1, "num_predict": 64, "seed": 7}


def test_every_option_is_named_in_the_sample() -> None:
    assert set(EVERY_OPTION) == set(OPTION_NAMES) == set(Options.model_fields)


def test_wire_order_is_the_spec_field_order() -> None:
    assert OPTION_ORDER == OPTION_NAMES == tuple(Options.model_fields)
    body = request_body("m", prompt="p", stream=True, options=dict(reversed(EVERY_OPTION.items())))
    assert body.decode().index('"num_gpu"') < body.decode().index('"seed"')


def test_rust_wire_order_matches() -> None:
    source = (RUST / "chimeraforge-core" / "src" / "body.rs").read_text()
    block = re.search(r"pub const OPTION_ORDER: \[&str; \d+\] = \[(.*?)\];", source, re.S)
    assert block is not None
    assert tuple(re.findall(r'"([a-z_]+)"', block.group(1))) == OPTION_NAMES


@pytest.mark.parametrize("prefix", ["chimera", "chimera2"])
def test_rust_agent_flags_match(prefix: str) -> None:
    source = (RUST / "chimeraforge-agent" / "src" / "cli.rs").read_text()
    rust = set(re.findall(rf'long = "({prefix}-[a-z-]+)"', source))
    assert rust == {option_flag(prefix, name).removeprefix("--") for name in OPTION_NAMES}
    # ints stay ints on the Rust side too (an i64 field refuses 8.5, as Python's int flag does)
    for name in OPTION_NAMES:
        field = re.search(rf'id = "{prefix}_{name}"\)\]\s*pub {name}: Option<(i64|f64)>', source)
        assert field is not None, name
        assert field.group(1) == ("i64" if OPTION_KINDS[name] is int else "f64"), name


def test_python_agent_accepts_every_option_flag() -> None:
    args = build_parser().parse_args(["agent", "multi", "--output-dir", "-", *option_flags("chimera", EVERY_OPTION)])
    assert _options(args, "chimera") == EVERY_OPTION
    assert all(type(v) is type(EVERY_OPTION[k]) for k, v in (_options(args, "chimera") or {}).items())
    assert _options(args, "chimera2") is None


def test_an_int_option_refuses_a_float(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["agent", "single", "--output-dir", "-", "--chimera-seed", "1.5"])
    assert exc.value.code == 2
    assert "Error:" in capsys.readouterr().err


@pytest.mark.parametrize("report", ["tr109", "tr110", "tr114"])
def test_spec_options_reach_the_agent_command_line(report: str) -> None:
    """num_predict and seed in a spec go through the plan into the command the agents run, and parse back."""
    spec = load_spec(ROOT / "experiments" / f"{report}.toml")
    spec = spec.model_copy(
        update={
            "configs": [
                c.model_copy(update={k: Options(**EVERY_OPTION) for k in ("a", "b", "options") if getattr(c, k)})
                for c in spec.configs
            ]
        }
    )
    plan = expand(spec, runs_per_config=1)
    optioned = [r for r in plan.runs if any(a.wire_options() for a in r.agents)]
    assert optioned
    for run in optioned:
        cmd = agent_command(run, spec, ["http://a:1", "http://b:2"], 1.0)
        assert {"--chimera-num-predict", "--chimera-seed"} <= set(cmd), run.run_id
        if run.language == "python":
            args = build_parser().parse_args(cmd[3:])
            sent = [_options(args, "chimera")]
            if args.agent_kind == "multi":
                sent.append(_options(args, "chimera2"))
            assert EVERY_OPTION in sent, run.run_id
