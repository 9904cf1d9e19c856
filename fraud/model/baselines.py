"""Baselines the neural network must beat, trained on the same rows and features (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraud.model.evaluation import LabelledData, Scorer

SEED = 42


def _scorer(model) -> Scorer:
    def score(x: np.ndarray) -> np.ndarray:
        return model.predict_proba(x)[:, 1] if len(x) else np.zeros(0)

    return score


def logistic_regression(train: LabelledData) -> Scorer:
    """Standardized features, L2-regularized logistic regression with balanced class weights."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=500))
    model.fit(train.x, train.y)
    return _scorer(model)


def gradient_boosting(train: LabelledData) -> Scorer:
    """Histogram gradient-boosted trees (LightGBM-style), regularized (leaves of at least 200 rows, L2 1.0, a
    learning rate of 0.05), early stopping on a held-out 10% of the rows. On the simulator this setting reaches a
    clearly higher average precision than scikit-learn's defaults (0.81 against 0.51 on the 7/7/7 bench): the
    network is compared with a tuned baseline, not a weak one."""
    model = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=300,
        min_samples_leaf=200,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=SEED,
    )
    model.fit(train.x, train.y)
    return _scorer(model)


# each tree of the forest grows on a bootstrap sample of at most this many rows: bounds the fit time whatever the
# window's size (see random_forest)
FOREST_MAX_SAMPLES = 100_000


def random_forest(train: LabelledData) -> Scorer:
    """200 trees, sqrt(features) tried at each split, leaves of at least 3 rows, no class weights, both cores.

    No class weights (class_weight=None) rather than "balanced_subsample": on two simulated 7/7/7 splits (4 worlds
    of 1,500 cards, seeds 1 and 21; ~88,000 train rows with ~650 frauds, 50 features) the unweighted forest
    reached AP 0.779 / 0.787 (mean 0.783) against 0.742 / 0.789 (0.765) weighted; with leaves of 1 row 0.779 /
    0.791 against 0.736 / 0.780, of 5 rows 0.771 / 0.784 against 0.728 / 0.775. Gradient boosting: 0.811 / 0.813.

    Each tree sees a bootstrap sample of at most FOREST_MAX_SAMPLES rows, so the fit time stops growing with the
    window: on a 240,000-row train window (11 worlds, 50 features) the full bootstrap took 157 CPU-seconds (135 s
    wall on the shared 2 cores; over the 2-minute budget) for AP 0.822, the capped one 77 CPU-seconds (75 s wall
    shared, about 40 s on 2 free cores) for AP 0.812. Windows of up to 100,000 rows get the full bootstrap."""
    model = RandomForestClassifier(
        n_estimators=200,
        max_features="sqrt",
        min_samples_leaf=3,
        class_weight=None,
        max_samples=FOREST_MAX_SAMPLES if len(train) > FOREST_MAX_SAMPLES else None,
        n_jobs=-1,
        random_state=SEED,
    )
    model.fit(train.x, train.y)
    return _scorer(model)


BASELINES = {
    "logistic_regression": logistic_regression,
    "gradient_boosting": gradient_boosting,
    "random_forest": random_forest,
}
