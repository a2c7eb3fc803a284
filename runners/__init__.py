"""Entry points: train, tables, figures, report, bench (the only modules that use Hydra)."""

import warnings

# conf/hydra/launcher/joblib.yaml shadows the joblib plugin's node of the same name to set a
# machine-sized n_jobs; Hydra 1.3 (pinned <1.4) validates it against the plugin's schema and
# warns that such matching is deprecated. The file is complete, so the warning is noise. It
# is filtered here, in the package, so that joblib's worker processes (which import
# runners.* when they unpickle the task) filter it too.
# The same for conf/hydra/launcher/submitit_{local,slurm}.yaml (submitit's pickles kept out
# of results/).
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/(joblib|submitit_local|"
                        r"submitit_slurm)' is validated against")
