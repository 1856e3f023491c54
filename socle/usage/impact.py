"""Energy and carbon of a call, estimated offline with EcoLogits' methodology (GenAI Impact).

EcoLogits models a generation's energy from the model's size (active and total parameters), the
output tokens and the request's latency, then the carbon from the electricity mix of the servers'
country and the site's PUE. Its data files ship in the package: nothing is fetched. A model without
``impact`` in the catalogue gets zeros, and an embeddings call (no output token) gets EcoLogits'
figure for zero generated tokens: what prompt processing costs is not modelled.
"""
from __future__ import annotations

import functools

from ecologits.electricity_mix_repository import electricity_mixes
from ecologits.impacts.llm import compute_llm_impacts

from socle.settings import Impact


class ImpactEstimator:
    def __init__(self, zone: str, *, pue: float, wue: float) -> None:
        mix = electricity_mixes.find_electricity_mix(zone)
        if mix is None:
            raise ValueError(f"SOCLE_ELECTRICITY_MIX: unknown zone {zone!r} (ISO 3166-1 alpha-3, e.g. FRA)")
        self._mix = mix
        self._pue = pue
        self._wue = wue

    def estimate(self, impact: Impact | None, completion_tokens: int, latency_ms: float) -> tuple[float, float]:
        """(energy in kWh, carbon in kg CO2-eq) of one call."""
        if impact is None:
            return 0.0, 0.0
        # Latency to the nearest 100 ms keeps the cache small and changes the estimate by next to nothing.
        return self._cached(impact.active_params_b, impact.total_params_b or impact.active_params_b,
                            completion_tokens, round(latency_ms / 100) / 10)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one estimator per process
    def _cached(self, active_b: float, total_b: float, tokens: int, latency_s: float) -> tuple[float, float]:
        impacts = compute_llm_impacts(
            model_active_parameter_count=active_b, model_total_parameter_count=total_b, output_token_count=tokens,
            if_electricity_mix_adpe=self._mix.adpe, if_electricity_mix_pe=self._mix.pe,
            if_electricity_mix_gwp=self._mix.gwp, if_electricity_mix_wue=self._mix.wue,
            datacenter_pue=self._pue, datacenter_wue=self._wue, request_latency=latency_s or None)
        return _value(impacts.energy.value), _value(impacts.gwp.value)


def _value(value: object) -> float:
    """EcoLogits gives a number or a range (min, max): keep the middle of the range."""
    if hasattr(value, "min") and hasattr(value, "max"):
        return (float(value.min) + float(value.max)) / 2  # type: ignore[attr-defined]
    return float(value)  # type: ignore[arg-type]
