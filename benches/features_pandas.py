"""The feature set of processed_features written the way the Python system that lakebuild
replaces computed it: pandas, one groupby per stock, rolling/ewm over each stock's whole
history, cross-sectional z-scores with groupby-transform. Used by `cargo bench --bench
features` as the baseline; it times the computation only (not reading the lake).

    python3 benches/features_pandas.py LAKE_DIR
"""

import sys
import time

import numpy as np
import pandas as pd
from deltalake import DeltaTable


def features(raw, topix, listed):
    df = raw[["Code", "Date", "AdjO", "AdjH", "AdjL", "AdjC", "AdjVo", "Va"]].copy()
    df = df[df.AdjC.notna()].sort_values(["Code", "Date"]).reset_index(drop=True)
    g = df.groupby("Code", sort=False)
    c, o, h, l, v = df.AdjC, df.AdjO, df.AdjH, df.AdjL, df.AdjVo
    prev = g.AdjC.shift(1)
    out = df[["Code", "Date"]].copy()
    for n in (1, 5, 10, 20, 60, 120):
        out[f"ret_{n}d"] = c / g.AdjC.shift(n) - 1
    df["lr"] = np.log(c / prev)
    out["log_ret_1d"] = df.lr
    out["ret_overnight"] = o / prev - 1
    out["ret_intraday"] = c / o - 1
    g = df.groupby("Code", sort=False)
    for n in (5, 10, 20, 60):
        out[f"vol_{n}d"] = g.lr.transform(lambda s: s.rolling(n).std()) * np.sqrt(252)
    df["hl2"] = np.log(h / l) ** 2
    df["tr"] = np.maximum(h - l, np.maximum((h - prev).abs(), (l - prev).abs()))
    g = df.groupby("Code", sort=False)
    out["parkinson_20d"] = np.sqrt(
        g.hl2.transform(lambda s: s.rolling(20).mean()) / (4 * np.log(2)) * 252
    )
    out["atr_14"] = g.tr.transform(lambda s: s.ewm(alpha=1 / 14, adjust=False).mean()) / c
    for n in (5, 20, 60):
        out[f"sma_gap_{n}"] = c / g.AdjC.transform(lambda s: s.rolling(n).mean()) - 1
    ema = lambda span: g.AdjC.transform(lambda s: s.ewm(span=span, adjust=False).mean())
    out["ema_gap_5_20"] = ema(5) / ema(20) - 1
    df["macd"] = ema(12) - ema(26)
    g = df.groupby("Code", sort=False)
    sig = g.macd.transform(lambda s: s.ewm(span=9, adjust=False).mean())
    out["macd"] = df.macd / c
    out["macd_signal"] = sig / c
    out["macd_hist"] = (df.macd - sig) / c
    d = c - prev
    df["gain"], df["loss"] = d.clip(lower=0), (-d).clip(lower=0)
    g = df.groupby("Code", sort=False)
    for p in (2, 14):
        ag = g.gain.transform(lambda s: s.ewm(alpha=1 / p, adjust=False).mean())
        al = g.loss.transform(lambda s: s.ewm(alpha=1 / p, adjust=False).mean())
        out[f"rsi_{p}"] = 100 * ag / (ag + al)
    mid = g.AdjC.transform(lambda s: s.rolling(20).mean())
    sd = g.AdjC.transform(lambda s: s.rolling(20).std(ddof=0))
    out["bb_pctb"] = (c - (mid - 2 * sd)) / (4 * sd)
    out["bb_width"] = 4 * sd / mid
    ll = g.AdjL.transform(lambda s: s.rolling(14).min())
    hh = g.AdjH.transform(lambda s: s.rolling(14).max())
    out["stoch_k_14"] = 100 * (c - ll) / (hh - ll)
    out["volume_ratio_5"] = v / g.AdjVo.transform(lambda s: s.rolling(5).mean())
    out["volume_ratio_20"] = v / g.AdjVo.transform(lambda s: s.rolling(20).mean())
    df["lturn"] = np.log1p(df.Va.fillna(0))
    g = df.groupby("Code", sort=False)
    out["turnover_z_20"] = (df.lturn - g.lturn.transform(lambda s: s.rolling(20).mean())) / g.lturn.transform(
        lambda s: s.rolling(20).std()
    )
    # Market.
    t = topix[["Date", "C"]].sort_values("Date").reset_index(drop=True)
    m = pd.DataFrame({"Date": t.Date})
    for n in (1, 5, 20):
        m[f"mkt_ret_{n}d"] = t.C / t.C.shift(n) - 1
    m["mkt_vol_20d"] = np.log(t.C / t.C.shift(1)).rolling(20).std() * np.sqrt(252)
    m["mkt_drawdown_252d"] = t.C / t.C.rolling(252).max() - 1
    out = out.merge(m, on="Date", how="left")
    df = df.merge(m[["Date", "mkt_ret_1d"]], on="Date", how="left")
    df["r1"] = out.ret_1d.values
    g = df.groupby("Code", sort=False)
    cov = g.apply(lambda x: x.r1.rolling(60).cov(x.mkt_ret_1d), include_groups=False).reset_index(level=0, drop=True)
    var_m = g.mkt_ret_1d.transform(lambda s: s.rolling(60).var())
    var_r = g.r1.transform(lambda s: s.rolling(60).var())
    beta = cov.sort_index() / var_m
    out["beta_60d"] = beta
    out["alpha_1d"] = out.ret_1d - beta * out.mkt_ret_1d
    out["alpha_5d"] = out.ret_5d - beta * out.mkt_ret_5d
    out["idio_vol_ratio_60d"] = np.sqrt((1 - cov.sort_index() ** 2 / (var_m * var_r)).clip(lower=0))
    # Sector, as of the date.
    out = out.merge(listed[["Code", "Date", "S33", "S17"]], on=["Code", "Date"], how="left")
    gs = out.groupby(["Date", "S33"])
    out["sector_ret_1d"] = gs.ret_1d.transform("median")
    out["sector_mom_20d"] = gs.ret_20d.transform("median")
    out["rel_sector_ret_5d"] = out.ret_5d - gs.ret_5d.transform("median")
    # Cross-sectional z-scores.
    feats = [x for x in out.columns if x not in ("Code", "Date", "S33", "S17") and not x.startswith("mkt_")]
    gd = out.groupby("Date")
    for f in feats:
        out[f + "_cs_z"] = ((out[f] - gd[f].transform("mean")) / gd[f].transform("std")).clip(-5, 5)
    return out


def main():
    lake = sys.argv[1]
    read = lambda a: DeltaTable(f"{lake}/{a}").to_pandas()
    raw, topix, listed = read("raw_stock_data"), read("topix"), read("listed_info")
    t = time.perf_counter()
    out = features(raw, topix, listed)
    secs = time.perf_counter() - t
    print(f"{secs:.3f} {len(out)} {out.shape[1]}")


if __name__ == "__main__":
    main()
