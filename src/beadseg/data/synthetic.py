"""Synthetic bead images with exact masks, generated deterministically from a seed.

A bead is an (almost) round disk; its image is the disk blurred by a Gaussian PSF, dark on a bright
background (bright-field) or bright on a dark one (fluorescence), under uneven illumination, with
Poisson (shot) and Gaussian (read) noise, stored as 8- or 16-bit. Debris, specks far smaller than the beads
(a third to half their radius), is drawn like them but is no bead: it is background in the labels.

Three more appearances (``modality=any`` draws all five) are what other microscopes show of the same beads:
``inverted`` (bright beads on a grey field: phase contrast, an inverted camera LUT), and the two faces of a bead
slightly off focus in bright-field: a bright centre inside a dark ring across the bead's edge (``ringed``: the bead
focuses light, as colloids of a higher index than the medium do) or a dark disk inside a bright halo
(``haloed``); the bead's disk stays the label.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from beadseg.data.sources import RenderedSource

MODALITIES = ("brightfield", "fluorescence")  # ``mixed`` draws one of these
APPEARANCES = (*MODALITIES, "inverted", "ringed", "haloed")  # ``any`` draws one of these


def _place_beads(rng: np.random.Generator, size: int, n_beads: int,
                 cluster_fraction: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bead centres (N, 2) and radii (N,): some scattered, some (``cluster_fraction`` of them, drawn from 0-0.5
    when None) touching a neighbour in clusters."""
    mean_radius = rng.uniform(2.5, 6.0)
    drawn = rng.uniform(0.0, 0.5)
    cluster_fraction = drawn if cluster_fraction is None else cluster_fraction
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(n_beads):
        radius = float(np.clip(mean_radius * rng.lognormal(0.0, 0.12), 2.0, 8.0))
        for _attempt in range(20):
            if centres and rng.random() < cluster_fraction:
                parent = rng.integers(len(centres))
                angle = rng.uniform(0, 2 * np.pi)
                distance = (radii[parent] + radius) * rng.uniform(0.95, 1.05)
                centre = centres[parent] + distance * np.array([np.sin(angle), np.cos(angle)])
            else:
                centre = rng.uniform(0, size, 2)
            if not (0 <= centre[0] < size and 0 <= centre[1] < size):
                continue
            if centres:
                gaps = np.hypot(*(np.asarray(centres) - centre).T) - 0.85 * (np.asarray(radii) + radius)
                if gaps.min() < 0:
                    continue
            centres.append(centre)
            radii.append(radius)
            break
    return np.asarray(centres).reshape(-1, 2), np.asarray(radii)


def _draw(size: int, centres: np.ndarray, radii: np.ndarray, rng: np.random.Generator,
          ring: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased bead density in [0, 1] and exact instance labels (slightly elliptic disks). With ``ring`` (inner,
    outer, as fractions of the radius), the density of that ring of each bead instead of its disk (the labels are
    the disks all the same)."""
    density = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.int32)
    for index, ((cy, cx), radius) in enumerate(zip(centres, radii), start=1):
        ratio, theta = rng.uniform(0.85, 1.0), rng.uniform(0, np.pi)
        amplitude = rng.uniform(0.8, 1.0)
        reach = int(np.ceil(radius * (1 if ring is None else max(ring[1], 1)) + 2))
        y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, size)
        x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, size)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy + 0.5 - cy, xx + 0.5 - cx
        along = dy * np.cos(theta) + dx * np.sin(theta)
        across = -dy * np.sin(theta) + dx * np.cos(theta)
        distance = np.hypot(along / ratio, across)
        soft = np.clip(radius - distance + 0.5, 0.0, 1.0) * amplitude
        if ring is not None:
            inner, outer = ring[0] * radius, ring[1] * radius
            soft = np.clip(np.minimum(outer - distance, distance - inner) + 0.5, 0.0, 1.0) * amplitude
        np.maximum(density[y0:y1, x0:x1], soft, out=density[y0:y1, x0:x1])
        window = labels[y0:y1, x0:x1]
        window[(distance <= radius) & (window == 0)] = index
    return density, labels


def _illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth field around 1: a tilt plus low-frequency blotches (vignetting, uneven lamp)."""
    coarse = zoom(rng.normal(size=(4, 4)), size / 4, order=3)[:size, :size]
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    tilt = rng.normal(size=2) @ np.stack([yy.ravel(), xx.ravel()])
    field = coarse / (np.abs(coarse).max() + 1e-6) + tilt.reshape(size, size)
    return (1.0 + rng.uniform(0.02, 0.15) * field / (np.abs(field).max() + 1e-6)).astype(np.float32)


def render_beads(
    rng: np.random.Generator,
    size: int = 512,
    n_beads: int | None = None,
    modality: str = "brightfield",
    *, bit_depth: int = 8,
    cluster_fraction: float | None = None,
    n_debris: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image (uint8 or uint16) and its instance labels (int32, 0 = background).

    ``n_beads`` defaults to a log-uniform draw from 3 to 700 per 512x512 (scaled by area); ``cluster_fraction``
    (the share of beads placed touching another) to a draw from 0 to 0.5. ``n_debris`` specks are drawn too,
    unlabelled (hard negatives). ``modality``: one of :data:`APPEARANCES`.
    """
    if modality not in APPEARANCES:
        raise ValueError(f"modality={modality!r}: choose one of {APPEARANCES}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth={bit_depth}: choose 8 or 16")
    if n_beads is None:
        n_beads = int(np.exp(rng.uniform(np.log(3), np.log(700))) * (size / 512) ** 2)
    centres, radii = _place_beads(rng, size, max(n_beads, 0), cluster_fraction)
    density, labels = _draw(size, centres, radii, rng)
    if n_debris:
        bead_radius = float(np.median(radii)) if len(radii) else rng.uniform(2.5, 6.0)
        specks = np.maximum(bead_radius * rng.uniform(0.3, 0.5, n_debris), 0.8)
        np.maximum(density, _draw(size, rng.uniform(0, size, (n_debris, 2)), specks, rng)[0], out=density)
    sigma = rng.uniform(0.6, 1.6)
    blurred = gaussian_filter(density, sigma=sigma)
    illumination = _illumination(rng, size)
    if modality == "brightfield":
        intensity = rng.uniform(0.35, 0.7) * illumination * (1.0 - rng.uniform(0.12, 0.5) * blurred)
    elif modality == "fluorescence":
        intensity = illumination * (rng.uniform(0.02, 0.1) + rng.uniform(0.3, 0.9) * blurred)
    elif modality == "inverted":
        intensity = rng.uniform(0.25, 0.5) * illumination * (1.0 + rng.uniform(0.25, 1.0) * blurred)
    else:  # off focus: a bright centre in a dark ring across the edge, or a dark disk in a bright halo around it
        inner = rng.uniform(0.6, 0.85) if modality == "ringed" else 1.0
        ring = (inner, rng.uniform(1.15, 1.4)) if modality == "ringed" else (1.0, rng.uniform(1.2, 1.5))
        rings = gaussian_filter(_draw(size, centres, radii, np.random.default_rng(rng.integers(2**32)), ring)[0], sigma)
        core = gaussian_filter(
            _draw(size, centres, radii * inner, np.random.default_rng(rng.integers(2**32)))[0], sigma
        )
        sign = 1.0 if modality == "ringed" else -1.0
        intensity = rng.uniform(0.35, 0.6) * illumination * (
            1.0 + sign * (rng.uniform(0.4, 1.0) * core - rng.uniform(0.35, 0.7) * rings))
    photons = rng.uniform(200, 3000)  # photons at full scale: sets the shot noise
    noisy = rng.poisson(np.clip(intensity, 0, None) * photons) / photons
    noisy = noisy + rng.normal(0.0, rng.uniform(0.002, 0.01), noisy.shape)
    full_scale = 255 if bit_depth == 8 else 65535 * rng.uniform(0.2, 0.9)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    image = np.clip(np.round(noisy * full_scale), 0, np.iinfo(dtype).max).astype(dtype)
    return image, labels


class SyntheticSource(RenderedSource):
    """``n_images`` synthetic images; image ``i`` depends only on (``seed``, ``i``).

    ``modality`` and ``bit_depth`` may be ``mixed``: each image then draws one (``modality=any``: one of every
    appearance, :data:`APPEARANCES`). ``cluster_fraction`` fixes the
    share of beads touching another (e.g. 0.5 with 300-700 beads: dense touching clusters). ``empty_fraction``
    of the images hold no bead (empty backgrounds to learn from); each image draws up to ``max_debris`` unlabelled
    specks (per 512², hard negatives).
    """

    def __init__(
        self,
        n_images: int = 48,
        image_size: int = 256,
        seed: int = 0,
        modality: str = "mixed",
        *, bit_depth: int | str = "mixed",
        min_beads: int = 3,
        max_beads: int = 700,
        cluster_fraction: float | None = None,
        empty_fraction: float = 0.0,
        max_debris: int = 0,
    ) -> None:
        self.n_images, self.image_size, self.seed = n_images, image_size, seed
        self.modality, self.bit_depth = modality, bit_depth
        self.min_beads, self.max_beads, self.cluster_fraction = min_beads, max_beads, cluster_fraction
        self.empty_fraction, self.max_debris = empty_fraction, max_debris

    def render(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Name, image and instance labels of image ``index``."""
        rng = np.random.default_rng([self.seed, index])
        modality = (rng.choice(MODALITIES) if self.modality == "mixed" else rng.choice(APPEARANCES)
                    if self.modality == "any" else self.modality)
        bit_depth = int(rng.choice([8, 16])) if self.bit_depth == "mixed" else int(self.bit_depth)
        per_area = (self.image_size / 512) ** 2
        n_beads = max(int(np.exp(rng.uniform(np.log(self.min_beads), np.log(self.max_beads))) * per_area), 1)
        if self.empty_fraction and rng.random() < self.empty_fraction:
            n_beads = 0
        n_debris = int(rng.integers(0, self.max_debris + 1) * per_area) if self.max_debris else 0
        image, labels = render_beads(
            rng,
            self.image_size,
            n_beads,
            str(modality),
            bit_depth=bit_depth,
            cluster_fraction=self.cluster_fraction,
            n_debris=n_debris,
        )
        return f"synthetic_{modality[:2]}{bit_depth}_{index:04d}", image, labels
