"""Entry points: train, tables, figures, report, bench (the only modules that use Hydra)."""

import warnings

from omegaconf import OmegaConf

# conf/hydra/launcher/joblib.yaml shadows the joblib plugin's node of the same name to set a
# machine-sized n_jobs; Hydra 1.3 (pinned <1.4) validates it against the plugin's schema and
# warns that such matching is deprecated. The file is complete, so the warning is noise. It
# is filtered here, in the package, so that joblib's worker processes (which import
# runners.* when they unpickle the task) filter it too.
# The same for conf/hydra/launcher/submitit_{local,slurm}.yaml (submitit's pickles kept out
# of results/).
warnings.filterwarnings(
    "ignore",
    message=r"\s*'hydra/launcher/(joblib|submitit_local|"
    r"submitit_slurm)' is validated against",
)


def even_split(total: int, part: int, parts: int = 3) -> int:
    """Part ``part`` of ``total`` split as evenly as possible into ``parts`` integers (the
    first ones get the remainder): 150 -> 50/50/50, 45 -> 15/15/15, 100 -> 34/33/33. The
    problems' ``m_pretrain_split`` follows ``m_pretrain`` with it (App. B: evenly split)."""
    total, part = int(total), int(part)
    return total // parts + (1 if part < total % parts else 0)


if not OmegaConf.has_resolver("even_split"):
    OmegaConf.register_new_resolver("even_split", even_split)
