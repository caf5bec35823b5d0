"""Invented case records for the demo, the benchmarks and the tests: plausible distributions,
no real person. Deterministic for a seed. Pure."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence

from node.stats.cases import CaseRecord

_FORMS = ("SexualExploitation", "ForcedLabour", "ForcedLabour", "SexualExploitation",
          "ChildLabour", "ForcedMarriage", "ForcedBegging", "Servitude", "Other")  # fmt: skip
_GENDERS = ("Feminine", "Feminine", "Feminine", "Masculine", "Masculine", "NonSpecifiedUnknown")


def sample_cases(
    n: int, country: str, start: dt.date, end: dt.date, seed: int = 7,
    neighbours: Sequence[str] = ("ZM", "ZW", "MW", "MZ", "ZA", "CD", "TZ", "BW"),
) -> list[CaseRecord]:  # fmt: skip
    """``n`` invented records (about 70 % victims, 20 % perpetrators, 10 % smuggled migrants)
    identified between ``start`` and ``end`` in ``country``."""
    rng = random.Random(seed)  # noqa: S311 - invented data, not secrets
    days = max((end - start).days, 1)
    out = []
    for i in range(n):
        day = start + dt.timedelta(days=rng.randrange(days))
        kind = rng.choices(("Victim", "Perpetrator", "SmuggledMigrant"), (70, 20, 10))[0]
        citizenship = country if rng.random() < 0.5 else rng.choice(neighbours)
        age = max(0, min(90, int(rng.gauss(24, 10))))
        record = CaseRecord(
            case_id=f"{country}-{seed}-{i:07d}",
            record_type=kind,
            identified_on=day,
            gender=rng.choice(_GENDERS),
            age=age if rng.random() < 0.9 else None,
            citizenship=citizenship,
            status=rng.choice(("ActualVictimOfTrafficking", "PossibleVictimOfTrafficking"))
            if kind == "Victim" else None,
            exploitation=rng.choice(_FORMS) if kind == "Victim" else None,
            recruitment_country=citizenship if kind == "Victim" else None,
            exploitation_country=(country if rng.random() < 0.8 else rng.choice(neighbours))
            if kind == "Victim" else None,
        )  # fmt: skip
        if kind == "Perpetrator":
            investigated = day
            prosecuted = investigated + dt.timedelta(days=rng.randrange(30, 200))
            convicted = prosecuted + dt.timedelta(days=rng.randrange(60, 400))
            record = CaseRecord(
                **{**record.__dict__, "investigated_on": investigated,
                   "prosecuted_on": prosecuted if prosecuted < end and rng.random() < 0.6 else None,
                   "convicted_on": convicted if convicted < end and rng.random() < 0.4 else None},
            )  # fmt: skip
        out.append(record)
    return out


def to_csv(records: Sequence[CaseRecord]) -> str:
    """Records as the CSV an agency would import (HTCDS column names; the age as
    vic_AgeWhenTrafficked, since a record keeps no date of birth)."""
    import csv
    import io

    out = io.StringIO()
    columns = ["case_id", "record_type", "identified_on", "prs_Gender", "vic_AgeWhenTrafficked",
               "prs_Citizenship", "vic_TraffickingStatus", "vic_TypeOfExploitation",
               "hte_RecruitmentCountry", "hte_ExploitationCountry", "per_InvestigatedOn",
               "per_ProsecutedOn", "per_ConvictedOn"]  # fmt: skip
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in records:
        values = (r.case_id, r.record_type, r.identified_on, r.gender, r.age, r.citizenship,
                  r.status, r.exploitation, r.recruitment_country, r.exploitation_country,
                  r.investigated_on, r.prosecuted_on, r.convicted_on)  # fmt: skip
        writer.writerow(["" if v is None else str(v) for v in values])
    return out.getvalue()
