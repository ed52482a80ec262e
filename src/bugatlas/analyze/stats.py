"""Small statistics the analyses share: Wilson intervals, chi-square with Cramér's V and
adjusted residuals, Kaplan-Meier survival, Mann-Kendall trend. Plain numpy/scipy, vectorised,
so a 100,000-issue study stays fast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

Z95 = 1.959963984540054


def wilson(k, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes out of n (arrays or scalars); n=0 gives NaN."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return low, high


@dataclass
class ChiSquare:
    """Test of independence of a contingency table (rows: groups, columns: categories)."""

    table: pd.DataFrame
    chi2: float
    dof: int
    p_value: float
    cramers_v: float
    expected: pd.DataFrame
    residuals: pd.DataFrame  # adjusted standardized residuals: |r| > 1.96 deviates at 5%
    low_expected_share: float  # share of cells with expected < 5 (the test is rough above 0.2)
    n: int

    def as_dict(self) -> dict:
        return {
            "chi2": self.chi2, "dof": self.dof, "p_value": self.p_value,
            "cramers_v": self.cramers_v, "n": self.n,
            "low_expected_share": self.low_expected_share,
            "rows": list(map(str, self.table.index)), "columns": list(map(str, self.table.columns)),
            "residuals": self.residuals.round(3).to_dict(orient="index"),
        }  # fmt: skip


def chi_square(table: pd.DataFrame) -> ChiSquare | None:
    """Chi-square independence test on a count table; None if it has fewer than 2 rows/columns
    with any counts (nothing to compare)."""
    t = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return None
    obs = t.to_numpy(dtype=float)
    chi2, p, dof, exp = sps.chi2_contingency(obs, correction=False)
    n = obs.sum()
    r = obs.sum(axis=1, keepdims=True) / n
    c = obs.sum(axis=0, keepdims=True) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = (obs - exp) / np.sqrt(exp * (1 - r) * (1 - c))
    v = float(np.sqrt(chi2 / (n * (min(obs.shape) - 1))))
    return ChiSquare(
        table=t, chi2=float(chi2), dof=int(dof), p_value=float(p), cramers_v=v,
        expected=pd.DataFrame(exp, index=t.index, columns=t.columns),
        residuals=pd.DataFrame(adj, index=t.index, columns=t.columns),
        low_expected_share=float((exp < 5).mean()), n=int(n),
    )  # fmt: skip


def kaplan_meier(durations, observed) -> pd.DataFrame:
    """Kaplan-Meier estimate. ``durations`` in days; ``observed`` False for censored (still
    open) issues. Returns time, at_risk, events, survival (share still open), and Greenwood
    95% bounds."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    keep = ~np.isnan(d)
    d, e = d[keep], e[keep]
    if d.size == 0:
        return pd.DataFrame(columns=["time", "at_risk", "events", "survival", "low", "high"])
    times, inverse = np.unique(d, return_inverse=True)
    events = np.bincount(inverse, weights=e.astype(float), minlength=times.size)
    totals = np.bincount(inverse, minlength=times.size)
    at_risk = d.size - np.concatenate([[0], np.cumsum(totals)[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = 1 - events / at_risk
        surv = np.cumprod(factor)
        green = np.cumsum(np.where(at_risk > events, events / (at_risk * (at_risk - events)), 0.0))
        se = surv * np.sqrt(green)
    frame = pd.DataFrame({
        "time": times, "at_risk": at_risk, "events": events.astype(int), "survival": surv,
        "low": np.clip(surv - Z95 * se, 0, 1), "high": np.clip(surv + Z95 * se, 0, 1),
    })  # fmt: skip
    return frame[frame["events"] > 0].reset_index(drop=True)


def km_median(curve: pd.DataFrame) -> float | None:
    """First time at which the survival drops to 0.5 or below (None: never, too many open)."""
    hit = curve.loc[curve["survival"] <= 0.5, "time"]
    return float(hit.iloc[0]) if len(hit) else None


def trend(values) -> dict:
    """Monotonic trend of a series in time order: Mann-Kendall (Kendall's tau against time,
    with its p-value) and the least-squares slope per step with its p-value."""
    y = np.asarray(values, dtype=float)
    y = y[~np.isnan(y)]
    if y.size < 3 or np.all(y == y[0]):
        return {"n": int(y.size), "tau": None, "mk_p": None, "slope": 0.0 if y.size else None,
                "slope_p": None, "direction": "flat" if y.size else "none"}  # fmt: skip
    x = np.arange(y.size)
    tau, p = sps.kendalltau(x, y)
    lr = sps.linregress(x, y)
    direction = "flat"
    if p < 0.05:
        direction = "increasing" if tau > 0 else "decreasing"
    return {"n": int(y.size), "tau": float(tau), "mk_p": float(p), "slope": float(lr.slope),
            "slope_p": float(lr.pvalue), "direction": direction}  # fmt: skip
