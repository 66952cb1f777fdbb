"""Presets and ``--set`` overrides: how a run's configuration is resolved.

Two kinds of YAML preset files, shipped in ``smpc_gym/presets/`` (linked from the
repository root as ``agents/`` and ``envs/``); a file of the same name under the current
directory's ``agents/`` or ``envs/`` takes precedence (:func:`preset_file`), and
``--config`` names an agent preset file explicitly:

``agents/<algo>.yaml`` — one section per env name::

    greedy_mouse:
      steps: 300000           # default training length in env steps
      env: {obs_mode: local}  # env kwargs this algorithm needs (override envs/<env>.yaml)
      config: {alpha: 0.1}    # fields of the algorithm's Config dataclass

``envs/<env>.yaml`` — named env presets, a mapping preset name → {env kwarg: value};
``default`` is used unless ``--set env_preset=NAME`` picks another.

Resolution order, later wins:

1. env kwargs: ``envs/<env>.yaml[preset]`` → the algo section's ``env`` →
   ``--set env.KEY=VALUE``;
2. config: the ``Config`` dataclass defaults → the algo section's ``config`` →
   ``--set KEY=VALUE``;
3. steps: the algo section's ``steps`` (else :data:`DEFAULT_STEPS`) → ``--steps`` /
   ``--episodes``.

``--set`` values are parsed with ``yaml.safe_load`` (``--set lr=1e-3``, ``--set
hidden=[64,64]``, ``--set env.perishable=true``) and checked against the dataclass
field's type. Unknown fields are an error listing the valid ones; a bad value names the
field, the value and the expected type. Every error here is a :class:`ConfigError`, which
the CLI turns into a one-line message and exit code 2.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from smpc_gym.envs.registry import ENV_NAMES, get_env_spec

#: Training length when neither the preset nor the command line says.
DEFAULT_STEPS = 100_000


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$")


class ConfigError(ValueError):
    """A bad preset file, ``--set`` override, or algorithm/env choice."""


def preset_file(kind: str, name: str, root: Path | None = None) -> Path:
    """Where ``<kind>/<name>.yaml`` (``kind`` is ``agents`` or ``envs``) is read from.

    With ``root``: ``root/<kind>/<name>.yaml``. Otherwise the current directory's file if
    it exists (a user's own presets, or the repository's ``agents/``, ``envs/`` when run
    from the checkout), else the copy shipped inside the package
    (``smpc_gym/presets/<kind>/``), so an installed ``smpc-gym`` uses the same presets.
    The returned path may not exist (then the dataclass defaults apply).
    """
    if root is not None:
        return root / kind / f"{name}.yaml"
    local = Path.cwd() / kind / f"{name}.yaml"
    if local.is_file():
        return local
    return PACKAGE_PRESETS / kind / f"{name}.yaml"


#: The presets shipped as package data; the repository's ``agents/`` and ``envs/`` are
#: symbolic links to these directories.
PACKAGE_PRESETS = Path(__file__).resolve().parent.parent / "presets"


@dataclass
class RunConfig:
    """A fully resolved run: everything ``config.yaml`` records.

    Attributes:
        algo: the ``--algo`` name.
        env: the ``--env`` name.
        env_preset: the ``envs/<env>.yaml`` preset used.
        env_kwargs: the environment's keyword arguments.
        config: the algorithm's Config fields (a plain dict).
        seed: the run's seed.
        steps: total env steps to train for.
        launch: launch options (e.g. ``rank``, ``world_size``, ``rendezvous``) handed to
            the algorithm as ``launch_options``; empty for ordinary runs.
        algo_config: the validated Config dataclass :func:`resolve` built ``config``
            from (not recorded; :func:`build_algorithm` uses it instead of validating
            ``config`` again when the two still agree). None for a run read back from
            ``config.yaml``, whose ``config`` is then validated once, on build.
    """

    algo: str
    env: str
    env_preset: str
    env_kwargs: dict[str, Any]
    config: dict[str, Any]
    seed: int
    steps: int
    launch: dict[str, Any] = field(default_factory=dict)
    algo_config: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A YAML-friendly dict of the recorded fields (tuples as lists)."""
        return _plain(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}
        )


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if isinstance(obj, (str, Path)):
        return str(obj)
    return obj


def load_yaml(path: Path) -> Any:
    """Read a YAML file; a syntax error is a :class:`ConfigError` naming the file."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None


def agent_preset(
    algo: str, env: str, path: str | Path | None = None, root: Path | None = None
) -> dict[str, Any]:
    """The ``env`` section of ``agents/<algo>.yaml`` (empty if the file has none).

    ``path`` given explicitly (``--config``) must exist; the default file may be absent.
    """
    if path is None:
        p = preset_file("agents", algo, root)
        if not p.is_file():
            return {}
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config {p}: no such file")
    data = load_yaml(p) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a mapping of env name -> section, got {data!r}")
    unknown_envs = sorted(set(data) - set(ENV_NAMES))
    if unknown_envs:
        raise ConfigError(f"{p}: unknown env section(s) {unknown_envs}; valid: {sorted(ENV_NAMES)}")
    section = data.get(env) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{p}: section {env!r} must be a mapping, got {section!r}")
    bad = sorted(set(section) - {"steps", "env", "config"})
    if bad:
        raise ConfigError(
            f"{p}: section {env!r} has unknown key(s) {bad}; valid: config, env, steps"
        )
    for key in ("env", "config"):
        if not isinstance(section.get(key) or {}, Mapping):
            raise ConfigError(f"{p}: {env}.{key} must be a mapping, got {section[key]!r}")
    return dict(section)


def env_presets(env: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """All presets of ``envs/<env>.yaml`` (``{"default": {}}`` when the file is absent)."""
    p = preset_file("envs", env, root)
    if not p.is_file():
        return {"default": {}}
    data = load_yaml(p) or {}
    if not isinstance(data, Mapping) or not all(
        isinstance(v, Mapping) or v is None for v in data.values()
    ):
        raise ConfigError(f"{p}: expected a mapping of preset name -> {{env kwarg: value}}")
    presets = {str(k): dict(v or {}) for k, v in data.items()}
    presets.setdefault("default", {})
    return presets


def parse_sets(items: Sequence[str]) -> list[tuple[str, Any]]:
    """Parse ``--set key=value`` items; values with ``yaml.safe_load``."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set lr=0.001)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        out.append((key, value))
    return out


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type annotation ``tp`` and convert where lossless
    (int → float, list → tuple). Raises :class:`ConfigError` naming ``where``."""

    def fail() -> ConfigError:
        return ConfigError(f"{where}: bad value {value!r}; expected {_type_name(tp)}")

    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError:
                pass
        raise fail()
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: bad value {value!r}; expected one of {list(args)}")
    if tp is type(None):
        if value is None:
            return None
        raise fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # e.g. --set steps=1e5
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. --set map=123 is still a name
        raise fail()
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise fail()
        container = tuple if (origin or tp) is tuple else list
        if not args:
            return container(value)
        if container is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], where) for v in value)
        if container is tuple:
            if len(args) != len(value):
                raise fail()
            return tuple(coerce(v, a, where) for v, a in zip(value, args, strict=True))
        return [coerce(v, args[0], where) for v in value]
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail()
        return dict(value)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise fail()
    return value  # an annotation we cannot check (e.g. a forward ref): accept as given


def config_types(config_cls: type) -> dict[str, Any]:
    """Field name → resolved type annotation of a Config dataclass."""
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_cls)}


def check_config_fields(
    config_cls: type, overrides: Mapping[str, Any], source: str
) -> dict[str, Any]:
    """``overrides`` type-checked against ``config_cls``'s fields (converted where
    lossless); a ConfigError names ``source`` (e.g. ``agents/dqn.yaml`` or ``--set``) and
    lists the valid fields. The dataclass's own checks run when it is built."""
    types_ = config_types(config_cls)
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in types_:
            raise ConfigError(
                f"{source}: unknown {config_cls.__name__} field {key!r}; "
                f"valid: {', '.join(sorted(types_))}"
            )
        values[key] = coerce(value, types_[key], f"{source} {key}")
    return values


def apply_config(config_cls: type, overrides: Mapping[str, Any], source: str) -> Any:
    """``config_cls()`` with ``overrides`` applied and type-checked (see
    :func:`check_config_fields`); the dataclass's own errors name ``source`` too."""
    return _build_config(config_cls, check_config_fields(config_cls, overrides, source), source)


def _build_config(config_cls: type, values: Mapping[str, Any], source: str) -> Any:
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def check_env_kwargs(env: str, kwargs: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Type-check env kwargs against the env's :meth:`EnvSpec.kwarg_types`."""
    types_ = get_env_spec(env).kwarg_types()
    out = {}
    for key, value in kwargs.items():
        if key not in types_:
            raise ConfigError(
                f"{source}: unknown {env} env kwarg {key!r}; valid: {', '.join(sorted(types_))}"
            )
        out[key] = coerce(value, types_[key], f"{source} env.{key}")
    return out


def resolve(
    algo: str,
    env: str,
    *,
    sets: Sequence[str] = (),
    config_path: str | Path | None = None,
    seed: int = 0,
    steps: int | None = None,
    episodes: int | None = None,
    launch: Mapping[str, Any] | None = None,
    root: Path | None = None,
) -> RunConfig:
    """Resolve presets, overrides and the algorithm's Config into a :class:`RunConfig`."""
    from smpc_gym.agents.base import get_algorithm

    try:
        spec = get_env_spec(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        cls = get_algorithm(algo)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except ImportError as exc:
        raise ConfigError(f"algorithm {algo!r} is not available: {exc}") from None
    if env not in cls.envs:
        raise ConfigError(
            f"algorithm {algo!r} does not support env {env!r}; it supports: {', '.join(cls.envs)}"
        )
    section = agent_preset(algo, env, config_path, root)
    src = str(config_path or f"agents/{algo}.yaml")

    preset_name = "default"
    env_sets: dict[str, Any] = {}
    cfg_sets: dict[str, Any] = {}
    for key, value in parse_sets(sets):
        if key == "env_preset":
            preset_name = str(value)
        elif key.startswith("env."):
            env_sets[key[4:]] = value
        else:
            cfg_sets[key] = value

    presets = env_presets(env, root)
    if preset_name not in presets:
        raise ConfigError(
            f"--set env_preset={preset_name}: unknown {env} preset; valid: "
            f"{', '.join(sorted(presets))}"
        )
    env_kwargs = check_env_kwargs(env, presets[preset_name], f"envs/{env}.yaml[{preset_name}]")
    env_kwargs.update(check_env_kwargs(env, section.get("env") or {}, src))
    env_kwargs.update(check_env_kwargs(env, env_sets, "--set"))

    base = dict(section.get("config") or {})
    if "env" in config_types(cls.Config):
        # Algorithms that play several envs (the baselines) learn which one from --env.
        chosen = cfg_sets.get("env", base.get("env", env))
        if chosen != env:
            raise ConfigError(f"config field env={chosen!r} contradicts --env {env}")
        base["env"] = env
    values = check_config_fields(cls.Config, base, src)  # preset errors name the file
    values.update(check_config_fields(cls.Config, cfg_sets, "--set"))
    config = _build_config(cls.Config, values, "--set" if cfg_sets else src)

    total = section.get("steps", DEFAULT_STEPS)
    if steps is not None and episodes is not None:
        raise ConfigError("give --steps or --episodes, not both")
    if steps is not None:
        total = steps
    elif episodes is not None:
        total = int(episodes) * spec.episode_length(env_kwargs)
    total = coerce(total, int, "steps")
    if total <= 0:
        raise ConfigError(f"steps: bad value {total!r}; expected a positive int")
    return RunConfig(
        algo=algo,
        env=env,
        env_preset=preset_name,
        env_kwargs=env_kwargs,
        config=dataclasses.asdict(config),
        seed=int(seed),
        steps=int(total),
        launch=dict(launch or {}),
        algo_config=config,
    )


def build_algorithm(run: RunConfig) -> Any:
    """Instantiate the algorithm of ``run`` (launch options set before ``train``)."""
    from smpc_gym.agents.base import get_algorithm

    cls = get_algorithm(run.algo)
    config = run.algo_config
    if config is None or _plain(dataclasses.asdict(config)) != _plain(run.config):
        config = apply_config(cls.Config, run.config, "config.yaml")
    try:
        algo = cls(config, run.env_kwargs, run.seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{run.algo} on {run.env}: {exc}") from None
    algo.launch_options = dict(run.launch)
    return algo
