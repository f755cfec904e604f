"""CLI commands: ``tactful decide`` and the ``tactful policy`` group (test, lint, explain)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tactful.commands.common import DbOption, safe_json, safe_text
from tactful.commands.scenario import NowOption, SensitivityOption
from tactful.errors import ScenarioError, TactfulError
from tactful.model import Decision, Scenario, parse_scenario
from tactful.safeload import SCENARIO_LIMITS, STDIN, DocumentError, load_document, load_json, load_yaml

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"


PolicyOption = Annotated[
    str | None,
    typer.Option("--policy", "-p", help="A policy pack file (default: the packaged default pack).",
                 show_default=False),
]


def load_scenario_file(path: Path) -> Scenario:
    """Read and validate a scenario file (YAML or JSON; ``-`` reads standard input, YAML or JSON).

    Read through the bounded loader (:mod:`tactful.safeload`: size, depth, aliases, tags, duplicate
    keys, 64-bit integers, UTF-8). Errors exit 2 naming the file, line and column (syntax) or the
    field path (contract)."""
    source = "<stdin>" if str(path) == STDIN else str(path)
    try:
        data = load_document(path, SCENARIO_LIMITS, source=source)
    except DocumentError as exc:
        raise ScenarioError(str(exc), source=source) from None
    return parse_scenario(data, source=source)


def load_scenario_text(text: str, path: str, *, json_only: bool = False) -> Scenario:
    """Parse and validate a scenario document; ``path`` names it in errors. YAML reads JSON too."""
    try:
        data = load_json(text, path, SCENARIO_LIMITS) if json_only else load_yaml(text, path, SCENARIO_LIMITS)
    except DocumentError as exc:
        raise ScenarioError(str(exc), source=path) from None
    return parse_scenario(data, source=path)


def format_decision(decision: Decision) -> str:
    """The decision as plain text for a person."""
    s = safe_text  # every piece that came from the scenario or the pack: one line, nothing obeyed
    lines = [f"verdict: {decision.verdict.value}"]
    if decision.verdict.value in ("allow", "soften"):
        lines.append(f"may use: depth {decision.max_depth.value}, "
                     f"{'greeting by name' if decision.named else 'no name'}")
    if decision.reasons:
        lines.append("reasons:")
        for r in decision.reasons:
            facts = f" [facts: {', '.join(s(f) for f in r.facts)}]" if r.facts else ""
            lines.append(f"  - {r.verdict.value:6} {s(r.rule)}: {s(r.message)}{facts}")
    else:
        lines.append("reasons: none (no rule fired)")
    if decision.remedies:
        lines.append("remedies:")
        lines.extend(f"  - {s(m)}" for m in decision.remedies)
    lines.append(f"policy: {s(decision.policy.name)} {s(decision.policy.version)}")
    return "\n".join(lines)


def compare_expectation(scenario: Scenario, decision: Decision) -> list[str]:
    """What differs between ``scenario.expect`` and the decision (empty: it matches)."""
    exp = scenario.expect
    if exp is None:
        return []
    diffs: list[str] = []
    if decision.verdict is not exp.verdict:
        diffs.append(f"verdict {decision.verdict.value}, expected {exp.verdict.value}")
    if exp.max_depth is not None and decision.max_depth is not exp.max_depth:
        diffs.append(f"max_depth {decision.max_depth.value}, expected {exp.max_depth.value}")
    if exp.named is not None and decision.named is not exp.named:
        diffs.append(f"named {str(decision.named).lower()}, expected {str(exp.named).lower()}")
    if exp.rules is not None:
        got = sorted(r.rule for r in decision.reasons)
        if got != sorted(exp.rules):
            diffs.append(f"rules [{', '.join(got)}], expected [{', '.join(sorted(exp.rules))}]")
    return diffs


def register(app: typer.Typer) -> None:
    """Add ``decide`` and the ``policy`` group to the root app."""
    from tactful.policy import evaluate, load_pack
    from tactful.policy.explain import explain_pack
    from tactful.policy.lint import lint_pack

    @app.command("decide")
    def decide(
        scenario: Annotated[Path | None, typer.Argument(
            help="A scenario file (YAML or JSON); - reads it from standard input. Or give --customer "
                 "and --touch instead.", show_default=False)] = None,
        customer: Annotated[str | None, typer.Option(
            "--customer", help="Decide for this customer of the store (with --touch): the scenario is "
                               "built from the store (docs/realtime.md).", show_default=False)] = None,
        touch: Annotated[Path | None, typer.Option(
            "--touch", help="A touch file (docs/realtime.md): the proposed touch, with fact selectors "
                            "and shown products; needs --customer.", show_default=False)] = None,
        db: DbOption = None,
        now: NowOption = None,
        sensitivity: SensitivityOption = None,
        policy: PolicyOption = None,
        fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.TEXT,
    ) -> None:
        """Decide one scenario: allow, soften, ask or block, with every reason. Exits 0 whatever the
        verdict; 2 for an invalid scenario, touch file or pack, or an unknown customer; 3 when the
        store cannot be read."""
        if customer is None:
            if scenario is None:
                raise ScenarioError("give a scenario file, or --customer ID --touch TOUCH.yaml")
            if touch is not None or now is not None or sensitivity is not None:
                raise ScenarioError("--touch, --now and --sensitivity go with --customer (a scenario "
                                    "file states its own now and implied categories)")
            pack = load_pack(policy)
            doc = load_scenario_file(scenario)
        else:
            if scenario is not None:
                raise ScenarioError("give either a scenario file or --customer, not both")
            if touch is None:
                raise ScenarioError("--customer needs --touch TOUCH.yaml (the touch to decide; "
                                    "docs/realtime.md)")
            from tactful.realtime import load_touch_file, scenario_from_store
            from tactful.sensitivity import load_mapping

            pack = load_pack(policy)
            mapping = load_mapping(sensitivity) if sensitivity is not None else None
            doc = scenario_from_store(db, customer, load_touch_file(touch), pack, now=now, mapping=mapping)
        # a scenario file without `now` is judged at the time of the run
        decision = evaluate(doc, pack, run_time=datetime.now(UTC))
        if fmt is Format.JSON:
            typer.echo(safe_json(decision.to_json_dict()))
        else:
            typer.echo(format_decision(decision))

    group = typer.Typer(help="Test, lint and explain policy packs.", no_args_is_help=True)
    app.add_typer(group, name="policy")

    @group.command("test")
    def test(
        directory: Annotated[Path, typer.Argument(help="A directory of scenario files with expect.")],
        policy: PolicyOption = None,
    ) -> None:
        """Decide every scenario in DIRECTORY (and its subfolders) that has `expect`; one line per
        file; exit 1 on any mismatch (verdict, and max_depth / named / rules when the expectation gives
        them), or when no scenario with `expect` was found."""
        if not directory.is_dir():
            raise ScenarioError(f"{directory}: not a directory")
        pack = load_pack(policy)
        files = sorted(p for p in directory.rglob("*") if p.suffix in SCENARIO_SUFFIXES and p.is_file())
        passed = failed = skipped = 0
        run_time = datetime.now(UTC)  # every scenario without `now` is judged at this one instant
        for path in files:
            name = path.relative_to(directory).as_posix()
            try:
                doc = load_scenario_file(path)
            except TactfulError as exc:
                failed += 1
                typer.echo(f"ERROR {safe_text(name)}: {safe_text(exc, multiline=True)}")
                continue
            except Exception as exc:  # a file the loader chokes on is one error line, never the end
                failed += 1
                typer.echo(f"ERROR {safe_text(name)}: cannot be read as a scenario "
                           f"({type(exc).__name__}: {safe_text(exc, multiline=True)})")
                continue
            if doc.expect is None:
                skipped += 1
                continue
            decision = evaluate(doc, pack, run_time=run_time)
            diffs = compare_expectation(doc, decision)
            fired = safe_text(", ".join(r.rule for r in decision.reasons) or "no rule")
            name = safe_text(name)
            if diffs:
                failed += 1
                typer.echo(f"FAIL  {name}: {safe_text('; '.join(diffs))} (fired: {fired})")
            else:
                passed += 1
                typer.echo(f"ok    {name}: {decision.verdict.value} ({fired})")
        typer.echo(f"{passed} passed, {failed} failed, {skipped} without expect "
                   f"(policy {safe_text(pack.name)} {safe_text(pack.version)})")
        if passed + failed == 0:
            typer.echo(f"{safe_text(directory)}: no scenario with expect was found; nothing was tested")
            raise typer.Exit(1)
        if failed:
            raise typer.Exit(1)

    @group.command("lint")
    def lint(
        pack_file: Annotated[Path, typer.Argument(help="A policy pack file.")],
        strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when there are warnings.")] = False,
    ) -> None:
        """Check a pack: syntax and types (file:line:col, the bad value, what was expected), then
        warnings. Exit 2 on an error; 0 otherwise (1 on warnings with --strict)."""
        warnings = lint_pack(pack_file)
        where = safe_text(pack_file)
        for w in warnings:
            typer.echo(f"{where}: warning: {safe_text(w)}")
        typer.echo(f"{where}: ok ({len(warnings)} warning(s))" if warnings else f"{where}: ok")
        if warnings and strict:
            raise typer.Exit(1)

    @group.command("explain")
    def explain(pack_file: Annotated[str | None, typer.Argument(
            help="A policy pack file (default: the packaged default pack).", show_default=False)] = None,
    ) -> None:
        """Print each rule of a pack with its rationale, in plain language."""
        typer.echo(safe_text(explain_pack(load_pack(pack_file)), multiline=True))
