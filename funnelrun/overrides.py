"""Overrides as users type them: Hydra's composition errors as funnelrun errors (what was wrong with
which override, and the fix), and which overrides a follow-up tool may apply to a finished run.

Hydra reports a misspelt key as "Could not override 'trainer.max_step'. To append to your config use
+trainer.max_step=10", advice the schemas then refuse (they have no such key). :func:`explain` turns
each kind of composition error into one message naming the override, the closest valid keys or
options, and what to type instead; it never suggests ``+key``. :data:`MAY_CHANGE` lists what
``funnelrun-sample``, ``-eval`` and ``-check`` may set differently from the run they read
(:mod:`funnelrun.pipelines.followup`).

    >>> explain_unknown_key("trainer.max_step=10", "trainer.max_step", ["max_steps", "devices"])
    'trainer.max_step is not a config key; did you mean trainer.max_steps=10? (`funnelrun --cfg job` prints every key)'
"""
from __future__ import annotations

import difflib
import re
from enum import Enum
from typing import Callable, Optional, Sequence

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

#: where the override grammar is documented (quoting, lists, sweeps)
GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic/"
#: Hydra's lines that only repeat the key paths or point at its own tracing
_NOISE = re.compile(
    r"^\s*(full_key:|reference_type=|object_type=|To append to your config use \+|Set the environment variable "
    r"HYDRA_FULL_ERROR|See https://hydra\.cc)"
)

#: a group with more options than this is not listed in full in an error message
MAX_LISTED = 20
#: (dotted node path) -> the keys that node has (None if there is no such node)
KeysOf = Callable[[str], Optional[list[str]]]
#: (dotted key) -> its value in the config without the failing override
ValueOf = Callable[[str], object]
#: (config group, e.g. ``experiment``) -> its options, nested ones as ``table1/power_f_nsf``
OptionsOf = Callable[[str], list[str]]


def _override_for(key: str, overrides: Sequence[str]) -> str:
    """The override (as typed) that sets ``key`` (or a key below it)."""
    for override in overrides:
        name = key_of(override)
        if name == key or name.startswith(key + ".") or key.startswith(name + "."):
            return override
    return key


def _close(word: str, candidates: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)


def explain_unknown_key(override: str, full_key: str, siblings: Sequence[str]) -> str:
    """``full_key`` (set by ``override``) is in no schema: suggest its closest siblings."""
    parent, _, name = full_key.rpartition(".")
    value = override.split("=", 1)[1] if "=" in override else "..."
    prefix = parent + "." if parent else ""
    close = _close(name, siblings)
    if close:
        fixes = " or ".join(f"{prefix}{c}={value}" for c in close)
        hint = f"did you mean {fixes}?"
    elif siblings:
        hint = f"the keys of {parent or 'the config'} are: {', '.join(sorted(siblings))}."
    else:
        hint = "check the spelling."
    return f"{full_key} is not a config key; {hint} (`funnelrun --cfg job` prints every key)"


def explain_missing_option(group: str, option: str, options: Sequence[str]) -> str:
    """``group=option`` named a config file that does not exist (e.g. ``model=fnsf``)."""
    options = [o for o in options if not o.startswith("schema")]
    close = _close(option, options)
    hint = f"did you mean {group}={close[0]}? " if close else ""
    listing = f"The {group} options are: {', '.join(options)}. " if 0 < len(options) <= MAX_LISTED else ""
    return f"{group}={option} is not an option of the {group} group; {hint}{listing}(`funnelrun --help` lists them all)"


def _missing_option(missing: str, overrides: Sequence[str]) -> tuple[str, str]:
    """(group as typed, option) of a missing config file ``missing`` (e.g. ``experiment/table1/x``)."""
    groups = [key_of(o) for o in overrides if "=" in o]
    typed = [g for g in groups if missing.startswith(g + "/")]
    group = max(typed, key=len) if typed else missing.rpartition("/")[0]
    return group, missing[len(group) + 1:]


def _shown(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def _strip(message: str) -> str:
    lines = [line for line in message.splitlines() if not _NOISE.match(line)]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    return "\n".join(line for line in lines if line.strip()).strip()


def explain(exc: BaseException, overrides: Sequence[str], keys_of: KeysOf, value_of: ValueOf,
            options_of: OptionsOf) -> str:
    """One message for a composition error of ``overrides``, with the fix; ``keys_of`` and ``value_of``
    look into the config composed without the failing override (for suggestions and defaults),
    ``options_of`` lists a group's options."""
    cause = exc.__cause__
    if isinstance(exc, OverrideParseException):
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        return (
            f"could not read the override {exc.override!r} ({first}). Write key=value; quote a value holding "
            f"spaces, brackets or commas, e.g. 'key=[a,b]' (the grammar: {GRAMMAR_URL})"
        )
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, option = _missing_option(exc.missing_cfg_file, overrides)
        options = sorted(set(options_of(group)) | set(exc.options or []))
        return explain_missing_option(group, option, options)
    text = str(exc)
    if isinstance(exc, ConfigCompositionException):
        ambiguous = re.match(r"Ambiguous value for argument '([^']*)'", text)
        if ambiguous:
            override = ambiguous.group(1)
            key, _, value = override.partition("=")
            return (
                f"{override} gives several values: add -m to run one job per value (funnelrun -m {override}), "
                f"or write {key}=[{value}] for one list value"
            )
        appended = re.match(r"Could not append to config\. An item is already at '([^']*)'", text)
        if appended:
            key = appended.group(1)
            return f"{key} is already a config key: drop the '+' and write {key}=<value>"
        full_key = getattr(cause, "full_key", None)
        if full_key and text.startswith("Could not override"):
            parent = full_key.rpartition(".")[0]
            return explain_unknown_key(_override_for(full_key, overrides), full_key, keys_of(parent) or [])
        if full_key and text.startswith("Error merging override"):
            override = text.removeprefix("Error merging override").strip()
            reason = _strip(str(getattr(cause, "msg", "") or cause)).splitlines()[0]
            current = _shown(value_of(full_key))
            now = f" (its value without this override: {current})" if current is not None else ""
            return f"{override}: {reason}; give {full_key} a value of its type{now}"
    detail = _strip(text + ("\n" + str(cause) if cause is not None else ""))
    return f"{detail}\n(`funnelrun --help` lists the groups and options, `funnelrun --cfg job` every key)"


# -- the overrides a follow-up tool (funnelrun-sample, -eval, -check) applies to a finished run ----
#: keys a follow-up tool may set differently from the run (an entry ending in "." covers a section)
MAY_CHANGE = (
    "data.data_dir", "data.eval_batch_size", "data.num_workers", "data.download",
    "eval.", "sample.", "trainer.accelerator", "trainer.devices", "seed", "log_every_s",
)
#: what a group option typed for a follow-up tool must agree with in the run's config
IDENTITY = {
    "model": ("model._target_",),
    "data": ("data._target_", "data.name", "data.bits"),
    "experiment": ("model._target_", "data._target_", "data.name", "data.bits"),
}
#: keys that name the run, read by the tool itself
RUN_KEYS = ("ckpt_path", "hydra.run.dir")


def key_of(override: str) -> str:
    """The key or group an override sets (``+``/``~`` prefixes and ``@package`` dropped)."""
    return override.split("=", 1)[0].lstrip("+~").split("@")[0]


def may_change(key: str) -> bool:
    return any(key == entry or (entry.endswith(".") and key.startswith(entry)) for entry in MAY_CHANGE)


def may_change_text() -> str:
    return ", ".join(entry + "*" if entry.endswith(".") else entry for entry in MAY_CHANGE)
