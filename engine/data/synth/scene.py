"""Ray casting of the eye region in the normalised strip camera: geometry, materials and lighting.

Everything is batched torch code over (sample, pixel). Per pixel, the ray is moved into the head frame and
intersected, in order, with the glasses' lens plane (which may bend it), the skin (a height field with eye
sockets, brow ridge and nose bridge), the lid shell of the nearer eye (an ellipsoid the lids lie on, with the
lid opening cut into it) and, through the opening, the eyeball (sclera, a flat iris disc behind the cornea,
pupil) and the cornea (for glints). The eye's shading only runs on the pixels inside the lid opening.

Vectors and colours are planar (component first) and the pixel stage has no Python-level branching on data, so
``torch.compile`` can fuse it (``render_scene(..., compiled=True)``): the same image, 4 to 5 times faster than
eagerly on 2 cores (``bench/synth_renderer.py``).

Units: millimetres and radians; colours are linear RGB radiance (the camera model applies exposure and gamma).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.data.batch import place_rows
from engine.data.synth.noise import SKIN_LOW, SKIN_MID, STRANDS, VESSELS, NoiseBank
from engine.data.synth.subject import Appearance
from engine.strip import StripGeometry, pitch_yaw_to_vector, rotation_from_pitch_yaw, vector_to_pitch_yaw

CORNEA_RADIUS = 7.8  # mm, radius of curvature of the cornea
CORNEA_PROTRUSION = 1.2  # mm, how far the corneal apex stands out of the eyeball sphere
LENS_VERTEX_DISTANCE = 13.0  # mm from the corneal apex to the spectacle lens


@dataclass
class Scene:
    """Per-image scene parameters (leading batch dimension B). Directions are in the camera frame."""

    head: Tensor  # B x 2 head (pitch, yaw)
    gaze: Tensor  # B x 2 gaze (pitch, yaw) from the eye-corner midpoint
    fixation_distance: Tensor  # B, mm from the eye midpoint to the fixated point
    blink: Tensor  # B, 1 = open, 0 = closed
    light_dir: Tensor  # B x 3, unit vector toward the light
    light_color: Tensor  # B x 3
    ambient: Tensor  # B x 3, ambient light from above
    ambient_below: Tensor  # B x 3, ambient light from below (bounce)
    pupil_radius: Tensor  # B, mm
    screen_glow: Tensor  # B, brightness of the screen's reflection in eyes and lenses

    def __len__(self) -> int:
        return int(self.head.shape[0])

    def index(self, rows: Tensor) -> Scene:
        """The images at ``rows``."""
        return Scene(**{k: v[rows] for k, v in vars(self).items()})


@dataclass
class Render:
    """What one render returns: radiance and the labels only a renderer knows."""

    radiance: Tensor  # B x 3 x h x w, linear
    mask: Tensor  # B x 1 x h x w, visible eyeball
    pupil_px: Tensor  # B x 2 x 2, pupil centres (x, y) in full-resolution strip pixels, image-left eye first
    openness: Tensor  # B, lid aperture relative to the subject's open eye at a level gaze


@dataclass
class _Layout:
    """Per-subject eye geometry in the head frame."""

    centres: Tensor  # B x 2 x 3 eyeball centres, image-left eye first
    radius: Tensor  # B
    axes: Tensor  # B x 3 lid-shell semi-axes


def eye_layout(app: Appearance) -> _Layout:
    """Eyeball centres of each subject, with the head-frame origin at the midpoint of its four eye corners.

    The same construction as :class:`engine.strip.EyeModel`, per subject: corners are points of the lid shell at
    the subject's corner (u, v) coordinates.
    """
    ax, ay, az = app.shell_axes.unbind(-1)
    half = app.ipd / 2.0
    corners = []
    for side in (-1.0, 1.0):
        for uv, toward in ((app.nasal_uv, -side), (app.temporal_uv, side)):
            u, v = uv[:, 0], uv[:, 1]
            z = -az * torch.sqrt((1.0 - u * u - v * v).clamp_min(0.0))
            corners.append(torch.stack((side * half + toward * u * ax, v * ay, z), dim=-1))
    mid = torch.stack(corners, dim=1).mean(dim=1)  # B x 3
    centres = torch.stack(
        (
            torch.stack((-half, torch.zeros_like(half), torch.zeros_like(half)), dim=-1),
            torch.stack((half, torch.zeros_like(half), torch.zeros_like(half)), dim=-1),
        ),
        dim=1,
    ) - mid.unsqueeze(1)
    return _Layout(centres=centres, radius=app.eyeball_radius, axes=app.shell_axes)


def _smoothstep(e0: float | Tensor, e1: float | Tensor, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# Per-pixel vectors and colours are planar, ``3 x B x N`` (component first): every component is a contiguous
# ``B x N`` plane, which is what lets a compiled kernel vectorise over pixels. Per-image ones are ``3 x B x 1``.


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of planar vectors (over the leading component axis)."""
    return (a * b).sum(0)


def _normalize(v: Tensor) -> Tensor:
    """Unit planar vectors."""
    out: Tensor = v / v.norm(dim=0, keepdim=True).clamp_min(1e-9)
    return out


def _unit_rows(v: Tensor) -> Tensor:
    """Unit vectors along the last axis (the per-image ``... x 3`` tensors)."""
    out: Tensor = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return out


def _planar(v: Tensor) -> Tensor:
    """Per-image vectors or colours ``B x 3`` as planar ``3 x B x 1``."""
    return v.transpose(0, 1).unsqueeze(-1)


def _rgb(like: Tensor, r: float, g: float, b: float) -> Tensor:
    """A constant vector or colour that broadcasts against the vectors ``like`` (``3 x ...``)."""
    return like.new_tensor([r, g, b]).view((3,) + (1,) * (like.dim() - 1))


def _by_side(pair: Tensor, sidef: Tensor) -> Tensor:
    """Per-image, per-eye vectors ``B x 2 x 3`` picked per pixel by eye (``sidef`` B x N of 0./1.): ``3 x B x N``."""
    first, second = _planar(pair[:, 0]), _planar(pair[:, 1])
    return first + (second - first) * sidef


# How per-image values (``B`` or ``B x k``) meet per-pixel ones: broadcast over all pixels (``_planar``,
# ``k x B x 1``), or gathered for a list of pixels whose images are ``rows`` (``M`` or ``k x M``).
Pick = Callable[[Tensor], Tensor]


def _gathered(rows: Tensor) -> Pick:
    def pick(v: Tensor) -> Tensor:
        return v[rows] if v.dim() == 1 else v[rows].transpose(0, 1)

    return pick


def _surface(x: Tensor, y: Tensor, p: dict[str, Tensor]) -> dict[str, Tensor]:
    """The face around the eyes as one height field over head-frame (x, y): depth z (into the head) and gradient.

    Skin (face curvature, eye sockets, brow ridge, nose bridge) and the lid shell of the nearer eye (the
    ellipsoid the lids lie on) are joined by a smooth minimum, so the lids rise out of the socket with a soft
    fold instead of a hard edge. ``shell`` is the weight of the shell in that join (1 on the lids).
    """
    ex, ez = p["eye_x"], p["eye_z"]
    # face curvature toward the temples and the forehead
    z = x * x * (1.0 / 400.0) + y * y * (1.0 / 600.0) - 2.0
    gx = x * (1.0 / 200.0)
    gy = y * (1.0 / 300.0)
    # eye socket: a depression around each eye, a little above its centre
    dx, dy = x - ex, y + 2.0
    sock = p["socket"] * torch.exp(-(dx * dx) * (1.0 / (2 * 15.0**2)) - (dy * dy) * (1.0 / (2 * 11.0**2)))
    z = z + sock
    gx = gx - sock * dx * (1.0 / 15.0**2)
    gy = gy - sock * dy * (1.0 / 11.0**2)
    # brow ridge: forward (negative z) above the eyes
    by = y + p["brow_y"]
    ridge = 3.0 * torch.exp(-(by * by) * (1.0 / (2 * 6.0**2)))
    z = z - ridge
    gy = gy + ridge * by * (1.0 / 6.0**2)
    # nose bridge: rises toward the camera between the eyes, more so lower down
    nx = 11.0 * torch.exp(-(x * x) * (1.0 / (2 * 7.5**2)))
    ny = torch.sigmoid((y + 4.0) * (1.0 / 6.0))
    nose = nx * ny
    z = z - nose
    gx = gx + nose * x * (1.0 / 7.5**2)
    gy = gy - nose * (1.0 - ny) * (1.0 / 6.0)
    # lid shell: front half of the ellipsoid around the eyeball
    sx, sy = dx * p["inv_ax"], (y - p["eye_y"]) * p["inv_ay"]
    r2 = 1.0 - sx * sx - sy * sy
    root = torch.sqrt(r2.clamp_min(0.02))
    # outside its outline the shell falls steeply away behind the skin
    out = (0.02 - r2).clamp_min(0.0)
    steep = 60.0 * (out > 0).float()
    # the lower half recedes into the cheek (lower lids are flatter than upper lids)
    below = sy.clamp_min(0.0)
    zs = ez - p["az"] * root + 8.0 * below * below + 60.0 * out
    gsx = (p["az"] / root * (r2 > 0.02).float() + 2.0 * steep) * sx * p["inv_ax"]
    gsy = (p["az"] / root * (r2 > 0.02).float() + 2.0 * steep) * sy * p["inv_ay"] + 16.0 * below * p["inv_ay"]
    # smooth minimum of the two depths (k mm wide fold)
    k = 3.0
    w = torch.sigmoid((z - zs) * (1.0 / k))  # weight of the shell
    zmin = torch.minimum(z, zs)
    blend = zmin - k * torch.log1p(torch.exp(-(z - zs).abs() * (1.0 / k)))
    return {
        "z": blend,
        "gx": gx + (gsx - gx) * w,
        "gy": gy + (gsy - gy) * w,
        "shell": w,
    }


def render_scene(
    app: Appearance,
    scene: Scene,
    geometry: StripGeometry,
    height: int,
    width: int,
    noise: NoiseBank,
    compiled: bool = False,
) -> Render:
    """Ray-cast a batch of eye strips at ``height`` x ``width`` (same field of view as ``geometry``).

    ``compiled`` runs the per-pixel work through ``torch.compile``: fused kernels instead of hundreds of passes
    over memory. The first call in a process compiles (38 to 100 s on 2 cores in our runs), later calls reuse
    the code.
    """
    b = len(scene)
    if len(app) != b:
        raise ValueError(f"appearance has {len(app)} subjects but the scene has {b} images")
    rays = _pixel_rays(geometry, height, width, scene.head.device)
    run = _compiled_pixels() if compiled else _render_pixels
    # Spectacles cost a fifth of the per-pixel work when every image computes them, and about a third of the
    # subjects wear them: wearers and the others are rendered apart, the others by code without any spectacles
    # (a second compiled variant; 4 % more strips per second on 2 cores, session 6).
    wearers = app.glasses.nonzero(as_tuple=True)[0]
    others = (~app.glasses).nonzero(as_tuple=True)[0]
    if others.numel() == 0 or wearers.numel() == 0:
        radiance, mask, pupil_cam, openness = run(app, scene, rays, geometry.distance_mm, noise, wearers.numel() > 0)
    else:
        parts = [
            (rows, run(app.index(rows), scene.index(rows), rays, geometry.distance_mm, noise, glasses))
            for rows, glasses in ((wearers, True), (others, False))
        ]
        radiance, mask, pupil_cam, openness = (place_rows([(rows, out[k]) for rows, out in parts], b) for k in range(4))
    return Render(
        radiance=radiance.view(b, 3, height, width),
        mask=mask.view(b, 1, height, width),
        pupil_px=geometry.project(pupil_cam),
        openness=openness,
    )


@functools.lru_cache(maxsize=64)
def _pixel_rays(geometry: StripGeometry, height: int, width: int, device: torch.device) -> Tensor:
    """The strip camera's unit rays through the pixel centres, ``N x 3`` (cached: every batch reuses them)."""
    return geometry.pixel_rays(height, width).to(device).reshape(height * width, 3).contiguous()


_PixelFn = Callable[[Appearance, Scene, Tensor, float, NoiseBank, bool], tuple[Tensor, Tensor, Tensor, Tensor]]


@functools.cache
def _compiled_pixels() -> _PixelFn:
    """``_render_pixels`` through ``torch.compile`` with dynamic shapes (made once per process)."""
    compiled: _PixelFn = torch.compile(_render_pixels, dynamic=True)
    return compiled


def _render_pixels(
    app: Appearance, scene: Scene, rays: Tensor, distance: float, noise: NoiseBank, glasses: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every pixel of every image; compiled, it becomes two fused graphs, split where the eye's pixels are gathered.

    ``glasses``: every subject of the batch wears spectacles (True) or none does (False).

    Returns radiance ``B x 3 x N``, visible eyeball ``B x N``, pupil centres in the camera frame ``B x 2 x 3``
    and lid openness ``B``.
    """
    rot = rotation_from_pitch_yaw(scene.head)  # B x 3 x 3, head frame -> camera frame
    centre = scene.head.new_tensor([0.0, 0.0, distance])
    # head-frame ray origins and directions: o = R^T (0 - M), d = R^T d_cam
    origin = _planar(-(rot.transpose(1, 2) @ centre))  # -> 3 x B x 1
    direc = torch.einsum("nk,bkj->jbn", rays, rot)  # -> 3 x B x N
    light = _planar(_unit_rows(torch.einsum("bk,bkj->bj", scene.light_dir, rot)))  # -> 3 x B x 1 (head frame)
    lay = eye_layout(app)

    eye_axis = _eye_axes(lay, scene, rot)  # B x 2 x 3
    in_head = vector_to_pitch_yaw(eye_axis.mean(dim=1))  # B x 2, eye-in-head (pitch, yaw)

    # glasses first: a lens bends the rays behind it
    glass: dict[str, Tensor] = {}
    if glasses:
        origin, direc, glass = _glasses(app, lay, origin, direc)  # -> 3 x B x N each
    else:
        origin = origin.expand(direc.shape)

    # the face surface: Newton steps on depth(t) - height(x(t), y(t)), starting from the plane z = 0
    ox, oy, oz = origin.unbind(0)
    dx_, dy_, dz_ = direc.unbind(0)
    t = -oz / dz_
    side = (ox + t * dx_ > 0).long()  # 0: image-left eye, 1: image-right eye
    sidef = side.to(t.dtype)
    eye_c = _by_side(lay.centres, sidef)  # -> 3 x B x N, centre of this pixel's eye
    axes = app.shell_axes
    params = {
        "eye_x": eye_c[0],
        "eye_y": eye_c[1],
        "eye_z": eye_c[2],
        "socket": app.socket_depth.unsqueeze(1),
        "brow_y": app.brow_height.unsqueeze(1),
        "inv_ax": (1.0 / axes[:, 0]).unsqueeze(1),
        "inv_ay": (1.0 / axes[:, 1]).unsqueeze(1),
        "az": axes[:, 2].unsqueeze(1),
    }
    for _ in range(2):
        surf = _surface(ox + t * dx_, oy + t * dy_, params)
        f = surf["z"] - (oz + t * dz_)
        slope = surf["gx"] * dx_ + surf["gy"] * dy_ - dz_
        # the slope is negative for a surface facing the camera; keep it away from 0 so steps stay bounded
        t = t - f / slope.clamp_max(-0.2)
    px, py = ox + t * dx_, oy + t * dy_
    surf = _surface(px, py, params)

    # lids: the opening in the shell, in shell (u, v) coordinates
    mirror = sidef * 2.0 - 1.0  # +u points to the temporal corner of each eye
    u = (px - params["eye_x"]) * params["inv_ax"] * mirror
    v = (py - params["eye_y"]) * params["inv_ay"]
    lids = _lid_curves(app, scene, in_head[:, 0], u)
    inside = (surf["shell"] > 0.5) & (lids["tau"].abs() < 1.0) & (v > lids["v_up"]) & (v < lids["v_lo"])

    colour = _shade_face(app, scene, noise, px, py, surf, params, light, v, lids)  # -> 3 x B x N
    # this pixel's eye: centre, gaze axis and the eye-fixed basis, per image and eye (B x 2 x 3)
    e1 = _unit_rows(torch.stack((eye_axis[..., 2], torch.zeros_like(eye_axis[..., 0]), -eye_axis[..., 0]), -1))
    pairs = {"c": lay.centres, "a": eye_axis, "e1": e1, "e2": torch.linalg.cross(e1, eye_axis, dim=-1)}
    eye_lids = {k: lids[k] for k in ("v_up", "v_lo", "tau")}
    # shade only the ~10 % of pixels inside the opening (compiled too: the gather splits the graph in two, and
    # that is still faster than shading every pixel)
    bi, pi = inside.nonzero(as_tuple=True)
    s = side[bi, pi]
    eye = {k: pair[bi, s].transpose(0, 1) for k, pair in pairs.items()}
    eye |= {"side": sidef[bi, pi], "light": light[:, bi, 0]}
    sub = {k: val[bi, pi] for k, val in eye_lids.items()}
    ray = (origin[:, bi, pi], direc[:, bi, pi])
    eye_rgb, hit = _shade_eye(app, scene, noise, _gathered(bi), ray, eye, v[bi, pi], sub)
    colour[:, bi, pi] = eye_rgb
    eyeball_visible = torch.zeros_like(t)
    eyeball_visible[bi, pi] = hit.to(t.dtype)
    colour = _lashes(app, colour, v, lids, surf["shell"], noise, sidef)
    if glasses:
        colour = _composite_glasses(app, scene, glass, colour, light)
        eyeball_visible = eyeball_visible * (1.0 - glass["rim"])

    pupil_cam = _pupil_cam(app, lay, eye_axis, rot, centre)
    return colour.transpose(0, 1).contiguous(), eyeball_visible, pupil_cam, lids["openness"]


def _eye_axes(lay: _Layout, scene: Scene, rot: Tensor) -> Tensor:
    """Gaze axes of both eyes in the head frame, B x 2 x 3: each eye turns toward the fixation point (which lies
    along the scene's gaze from the eye-corner midpoint, ``fixation_distance`` away). ``rot``: head -> camera."""
    target = scene.fixation_distance.unsqueeze(-1) * torch.einsum("bk,bkj->bj", pitch_yaw_to_vector(scene.gaze), rot)
    return _unit_rows(target.unsqueeze(1) - lay.centres)


def _pupil_cam(app: Appearance, lay: _Layout, eye_axis: Tensor, rot: Tensor, centre: Tensor) -> Tensor:
    """Pupil centres (the centre of the iris disc) of both eyes in the camera frame, B x 2 x 3."""
    iris_depth = torch.sqrt((lay.radius**2 - app.iris_radius**2).clamp_min(1.0)).view(-1, 1, 1)
    return torch.einsum("bij,bej->bei", rot, lay.centres + eye_axis * iris_depth) + centre


def pupil_centres_px(app: Appearance, scene: Scene, geometry: StripGeometry) -> Tensor:
    """Where the renderer puts the pupil centres of ``scene``, B x 2 x 2 (x, y) strip pixels, image-left eye
    first: :attr:`Render.pupil_px` from the geometry alone, without shading a pixel.

    Nothing bends the path from the iris to the camera but spectacle lenses (the cornea only adds glints), so
    for subjects without spectacles this is also where the image shows the pupil.
    """
    if len(app) != len(scene):
        raise ValueError(f"appearance has {len(app)} subjects but the scene has {len(scene)} images")
    rot = rotation_from_pitch_yaw(scene.head)  # B x 3 x 3, head frame -> camera frame
    centre = scene.head.new_tensor([0.0, 0.0, geometry.distance_mm])
    lay = eye_layout(app)
    return geometry.project(_pupil_cam(app, lay, _eye_axes(lay, scene, rot), rot, centre))


def _lid_curves(app: Appearance, scene: Scene, pitch: Tensor, u: Tensor) -> dict[str, Tensor]:
    """Upper and lower lid margins in shell (u, v) coordinates, per pixel, and the lid aperture.

    The upper lid follows the eye's pitch in the head (it drops when looking down and rises when looking up;
    the lower lid moves a little the other way), and a blink brings the upper lid down onto the lower one.
    """
    nu, nv = app.nasal_uv[:, 0:1], app.nasal_uv[:, 1:2]
    tu, tv = app.temporal_uv[:, 0:1], app.temporal_uv[:, 1:2]
    tau = (u + nu) / (tu + nu) * 2.0 - 1.0  # -1 at the nasal corner, +1 at the temporal corner
    v_line = nv + (tv - nv) * (tau + 1.0) * 0.5
    up_gain, lo_gain = _lid_gains(pitch)
    blink = scene.blink.unsqueeze(1)
    up_open = (app.lid_upper * up_gain).unsqueeze(1)
    lo_open = (app.lid_lower * lo_gain).unsqueeze(1)
    peak = app.lid_peak.unsqueeze(1)
    arc = (1.0 - tau * tau).clamp_min(0.0)
    v_lo = v_line + lo_open * arc.pow(0.9) * (1.0 - 0.2 * (1.0 - blink))
    v_up_open = v_line - up_open * arc.pow(0.75) * (1.0 - peak * tau)
    v_up = v_lo + (v_up_open - v_lo) * blink - 0.004
    # aperture at the middle of the opening, relative to the same subject with open eyes at a level gaze
    aperture = scene.blink * (app.lid_upper * up_gain + app.lid_lower * lo_gain * (1.0 - 0.2 * (1.0 - scene.blink)))
    openness = (aperture / (app.lid_upper + app.lid_lower)).clamp(0.0, 2.0)
    return {"tau": tau, "v_up": v_up, "v_lo": v_lo, "openness": openness, "up_open": up_open * blink}


def _lid_gains(pitch: Tensor) -> tuple[Tensor, Tensor]:
    """How much the upper and lower lid openings scale with the eye's pitch in the head (radians, up > 0)."""
    return (1.0 + 1.3 * pitch).clamp(0.25, 1.8), (1.0 - 0.45 * pitch).clamp(0.6, 1.5)


def _ambient(scene: Scene, ny: Tensor, pick: Pick = _planar) -> Tensor:
    """Hemispherical ambient light for normals with head-frame y component ``ny`` (y is down): ``3 x ...``."""
    w = 0.5 - 0.5 * ny  # 1 facing up, 0 facing down
    return pick(scene.ambient) * w + pick(scene.ambient_below) * (1.0 - w)


def _diffuse(scene: Scene, normal: Tensor, light: Tensor, wrap: float) -> Tensor:
    """Wrapped Lambert term (soft terminator, as skin scatters light under its surface), with light colour."""
    ndl = ((_dot(normal, light) + wrap) / (1.0 + wrap)).clamp_min(0.0)
    return ndl * _planar(scene.light_color)


def _specular(scene: Scene, normal: Tensor, light: Tensor, power: float, strength: float | Tensor) -> Tensor:
    """Blinn-Phong highlight for a camera looking along +z (the view vector points to -z)."""
    half = _normalize(light + _rgb(light, 0.0, 0.0, -1.0))
    s = _dot(normal, half).clamp_min(0.0).pow(power) * strength
    return s * _planar(scene.light_color)


def _shade_face(
    app: Appearance,
    scene: Scene,
    noise: NoiseBank,
    x: Tensor,
    y: Tensor,
    surf: dict[str, Tensor],
    params: dict[str, Tensor],
    light: Tensor,
    v: Tensor,
    lids: dict[str, Tensor],
) -> Tensor:
    """Skin and eyelids: texture, socket shading, lid crease, eyeliner, the wet lower-lid margin, eyebrows."""
    normal = _normalize(torch.stack((surf["gx"], surf["gy"], -torch.ones_like(x))))  # -> 3 x B x N
    off = app.tex_offset.unsqueeze(1)
    low = noise.sample(SKIN_LOW, x * (1.0 / 90.0) + off[..., 0], y * (1.0 / 90.0) + off[..., 1])
    mid = noise.sample(SKIN_MID, x * (1.0 / 60.0) + off[..., 1], y * (1.0 / 60.0) + off[..., 0])
    tex = 1.0 + app.skin_texture.unsqueeze(1) * ((low - 0.5) * 2.0 + (mid - 0.5) * 0.8)
    shell = surf["shell"]
    # lids are a little pinker/darker than the face; the socket darker still (less light reaches into it)
    lid_tint = 1.0 + (_planar(app.lid_tint) - 1.0) * shell
    depth = (surf["z"] - (x * x * (1.0 / 400.0) - 2.0)).clamp_min(0.0) / (params["socket"] + 1.0)
    depth = depth.clamp(0.0, 1.0)
    dark_circle = torch.exp(-(((y - 11.0) * 0.25) ** 2) - ((x - params["eye_x"]) * (1.0 / 12.0)) ** 2)
    albedo = _planar(app.skin) * (tex * (1.0 - 0.12 * depth) * (1.0 - 0.12 * dark_circle))
    albedo = albedo * lid_tint

    # lid crease above the margin (flattening as the lid closes), eyeliner on the margin
    d_up = lids["v_up"] - v  # > 0 above the upper margin (on the lid)
    d_lo = v - lids["v_lo"]  # > 0 below the lower margin
    in_span = (1.0 - _smoothstep(0.85, 1.15, lids["tau"].abs())) * shell
    crease_gap = 0.22 + 0.55 * lids["up_open"]
    crease = torch.exp(-(((d_up - crease_gap) * 18.0) ** 2)) * in_span
    liner = app.eyeliner.unsqueeze(1) * torch.exp(-((d_up.clamp_min(0.0) * 16.0) ** 2)) * (d_up > -0.01) * in_span
    albedo = albedo * (1.0 - 0.3 * crease - 0.8 * liner).clamp(0.05, 1.0)
    water = torch.exp(-((d_lo.clamp_min(0.0) * 28.0) ** 2)) * (d_lo > -0.005) * in_span
    albedo = albedo + (_rgb(albedo, 0.33, 0.15, 0.13) - albedo) * (0.6 * water)
    albedo = _eyebrows(app, noise, x, y, albedo)

    ao = 1.0 - 0.25 * depth
    light_in = _ambient(scene, normal[1]) * ao + _diffuse(scene, normal, light, wrap=0.3)
    return albedo * light_in + _specular(scene, normal, light, power=24.0, strength=0.05 + 0.35 * water)


def _eyebrows(app: Appearance, noise: NoiseBank, x_all: Tensor, y_all: Tensor, albedo: Tensor) -> Tensor:
    """Blend hair into the skin albedo along each brow (tapering arch, strands pointing outward).

    Only the upper half of the strip can show brows, so only that half is computed.
    """
    rows = x_all.shape[1] // 2
    x, y = x_all[:, :rows], y_all[:, :rows]
    t = (x.abs() - 11.0) * (1.0 / 42.0)  # 0 at the nasal start of the brow, 1 at its tail
    tc = t.clamp(0.0, 1.0)
    arch = app.brow_arch.unsqueeze(1) * torch.sin(tc * (math.pi * 0.85))
    centre_y = -app.brow_height.unsqueeze(1) - arch
    thick = app.brow_thickness.unsqueeze(1) * (1.1 - 0.7 * tc)
    across = (y - centre_y) / thick
    along = _smoothstep(-0.08, 0.05, t) * (1.0 - _smoothstep(0.9, 1.08, t))
    density = torch.exp(-(across**4) * 2.0) * along * app.brow_density.unsqueeze(1)
    # strands: noise stretched along the hair direction (up at the start, outward along the brow)
    ang = (0.9 - 0.75 * tc) * torch.sign(x)
    ca, sa = torch.cos(ang), torch.sin(ang)
    off = app.tex_offset.unsqueeze(1)
    strands = noise.sample(
        STRANDS,
        (x * sa + y * ca) * (1.0 / 14.0) + off[..., 0],
        (x * ca - y * sa) * (1.0 / 110.0) + off[..., 1],
    )
    hair = (density * (0.35 + 0.65 * _smoothstep(0.42, 0.62, strands))).clamp(0.0, 1.0)
    upper = albedo[:, :, :rows]
    return torch.cat((upper + (_planar(app.hair) - upper) * hair, albedo[:, :, rows:]), dim=2)


def _shade_eye(
    app: Appearance,
    scene: Scene,
    noise: NoiseBank,
    pick: Pick,
    ray: tuple[Tensor, Tensor],
    eye: dict[str, Tensor],
    v: Tensor,
    lids: dict[str, Tensor],
) -> tuple[Tensor, Tensor]:
    """Colour of pixels seen through the lid opening (``3 x P``), and whether each one hits the eyeball (True) or
    the pink tissue in the corner behind it.

    Pixel values have any shape ``P`` (vectors ``3 x P``): every pixel (``B x N``) or a gathered list; ``pick``
    brings per-image values to them. ``ray`` is (origin, direction); ``eye`` holds this pixel's eye centre ``c``,
    gaze axis ``a``, eye-fixed basis ``e1``/``e2`` (so the iris texture and vessels turn with the eye), ``side``
    (0./1.) and the light direction ``light``, all in the head frame.
    """
    o, d = ray
    c, a, e1, e2, light = eye["c"], eye["a"], eye["e1"], eye["e2"], eye["light"]
    r = pick(app.eyeball_radius)
    col_light = pick(scene.light_color)
    oc = o - c
    half_b = _dot(oc, d)
    disc = half_b * half_b - (_dot(oc, oc) - r * r)
    hit = disc > 0
    t = -half_b - torch.sqrt(disc.clamp_min(0.0))
    n = _normalize(o + t * d - c)
    cos_t = _dot(n, a)
    r_iris = pick(app.iris_radius)
    cos_l = torch.sqrt((1.0 - (r_iris / r) ** 2).clamp_min(0.0))

    # iris: a flat disc in the limbus plane, seen through the (transparent) cornea
    plane_c = c + a * (r * cos_l)
    tp = _dot(plane_c - o, a) / _dot(d, a)
    w = o + tp * d - plane_c
    rho = (w.norm(dim=0) / r_iris).clamp(0.0, 1.2)
    phi = torch.atan2(_dot(w, e2), _dot(w, e1))
    rho_p = (pick(scene.pupil_radius * app.pupil_scale) / r_iris).clamp(0.12, 0.7)
    ph = pick(app.iris_phase)
    fibres = (
        0.5 * torch.sin(37.0 * phi + ph[0] + 4.0 * rho)
        + 0.3 * torch.sin(61.0 * phi + ph[1] - 6.0 * rho)
        + 0.2 * torch.sin(13.0 * phi + ph[2])
    )
    crypts = noise.sample(SKIN_MID, phi * (4.0 / (2 * math.pi)) + ph[3], rho * 1.5 + ph[0])
    mix = _smoothstep(rho_p, rho_p + 0.45, rho)
    iris = pick(app.iris_inner) * (1.0 - mix) + pick(app.iris_outer) * mix
    collarette = torch.exp(-(((rho - (rho_p + 0.22)) * (1.0 / 0.07)) ** 2))
    iris = iris * (0.75 + 0.3 * fibres + 0.3 * collarette + 0.6 * (crypts - 0.5)).clamp(0.3, 2.0)
    iris = iris * (1.0 - 0.75 * _smoothstep(0.78, 1.0, rho))  # dark limbal ring
    pupil_w = _smoothstep(rho_p - 0.035, rho_p + 0.035, rho)
    iris = _rgb(o, 0.008, 0.007, 0.008) * (1.0 - pupil_w) + iris * pupil_w

    # sclera: off-white, redder and darker toward the corners, with faint vessels turning with the eye
    lon = torch.atan2(_dot(n, e1), -cos_t)
    lat = torch.asin(_dot(n, e2).clamp(-1.0, 1.0))
    off = pick(app.tex_offset)
    vessel = noise.sample(VESSELS, lon * (1.0 / 1.3) + off[0] + eye["side"] * 0.37, lat * (1.0 / 1.3) + off[1])
    periphery = (1.0 - cos_t).clamp(0.0, 1.0)
    redness = (pick(app.vessels) * _smoothstep(0.55, 0.9, vessel) * (0.3 + 1.4 * periphery)).clamp(0.0, 1.0)
    sclera = pick(app.sclera) * (1.0 - 0.35 * periphery)
    sclera = sclera + (_rgb(o, 0.45, 0.10, 0.08) - sclera) * (0.55 * redness)

    limbus = _smoothstep(cos_l - 0.03, cos_l + 0.01, cos_t)
    albedo = sclera * (1.0 - limbus) + iris * limbus

    # lighting: lid shadow under the upper margin, occlusion in the corners
    shadow = 1.0 - 0.6 * torch.exp(-(v - lids["v_up"]).clamp_min(0.0) * 10.0)
    shadow = shadow * (1.0 - 0.25 * torch.exp(-(lids["v_lo"] - v).clamp_min(0.0) * 20.0))
    shadow = shadow * (1.0 - 0.45 * lids["tau"].abs() ** 4)
    ambient = _ambient(scene, n[1], pick)
    diffuse = _dot(n, light).clamp_min(0.0) * col_light
    colour = albedo * (ambient + diffuse) * shadow

    # cornea: glint of the light and the screen's reflection (the cornea's centre is not the eye's, so the
    # glint moves much less than the pupil when the eye turns)
    cc = c + a * (r + CORNEA_PROTRUSION - CORNEA_RADIUS)
    occ = o - cc
    hb = _dot(occ, d)
    dc = hb * hb - (_dot(occ, occ) - CORNEA_RADIUS**2)
    tc = -hb - torch.sqrt(dc.clamp_min(0.0))
    nc = _normalize(o + tc * d - cc)
    on_cornea = ((dc > 0) & (cos_t > cos_l - 0.05)).to(o.dtype)
    half = _normalize(light + _rgb(o, 0.0, 0.0, -1.0))
    glint = _dot(nc, half).clamp_min(0.0).pow(600.0) * 6.0
    refl = d - 2.0 * _dot(d, nc) * nc  # reflected view ray, head frame
    screen = _smoothstep(0.93, 0.97, -refl[2]) * _smoothstep(-0.25, -0.05, 0.05 - refl[1])
    screen_rgb = _rgb(o, 0.8, 0.85, 1.0) * pick(scene.screen_glow)
    wet = _dot(n, half).clamp_min(0.0).pow(80.0) * 0.4
    spec = on_cornea * (glint * col_light + 0.25 * screen * screen_rgb)
    colour = colour + spec + (1.0 - on_cornea) * wet * col_light * shadow

    # rays that pass the opening but miss the eyeball: the pink caruncle in the corner
    caruncle = _rgb(o, 0.35, 0.12, 0.11) * (ambient + 0.5 * col_light)
    return torch.where(hit, colour, caruncle), hit


def _lashes(
    app: Appearance,
    colour: Tensor,
    v: Tensor,
    lids: dict[str, Tensor],
    shell: Tensor,
    noise: NoiseBank,
    sidef: Tensor,
) -> Tensor:
    """Dark lash strands along the upper margin (and sparser ones along the lower margin)."""
    tau = lids["tau"]
    along = (1.0 - _smoothstep(0.7, 1.02, tau.abs())) * _smoothstep(0.3, 0.6, shell)
    d_up = lids["v_up"] - v  # > 0 above the upper margin
    length = app.lash_length.unsqueeze(1)
    # lashes fan out from the margin: strands are lines in (tau, distance from the margin)
    fan = tau * 26.0 + d_up * (3.0 * tau) / length
    off = app.tex_offset.unsqueeze(1)
    strands = noise.sample(STRANDS, fan * (1.0 / 16.0) + off[..., 0] + sidef * 0.3, off[..., 1] + d_up * 0.05)
    band_up = _smoothstep(-0.3 * length, 0.0, d_up) * (1.0 - _smoothstep(0.25 * length, length, d_up))
    upper = band_up * (0.25 + 0.75 * _smoothstep(0.45, 0.58, strands)) * app.lash_density.unsqueeze(1)
    d_lo = v - lids["v_lo"]
    band_lo = _smoothstep(-0.02, 0.0, d_lo) * (1.0 - _smoothstep(0.0, 0.45 * length, d_lo))
    lower = band_lo * _smoothstep(0.5, 0.65, strands) * 0.45 * app.lash_density.unsqueeze(1)
    cover = ((upper + lower) * along).clamp(0.0, 0.9)
    return colour + (_planar(app.hair) * 0.3 - colour) * cover


def _glasses(app: Appearance, lay: _Layout, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Spectacles of subjects who all wear them: lens and rim coverage per pixel, and the rays after the lens
    (thin-lens prism deflection): origins and directions ``3 x B x N`` from ``3 x B x 1`` and ``3 x B x N``."""
    plane_z = (lay.centres[:, 0, 2] - lay.radius - CORNEA_PROTRUSION - LENS_VERTEX_DISTANCE).unsqueeze(1)
    hit = o + (plane_z - o[2]) / d[2] * d
    gx, gy = hit[0], hit[1]
    half_w, half_h = app.glasses_size[:, 0:1], app.glasses_size[:, 1:2]
    offset = app.glasses_offset
    lens_cx = lay.centres[:, 1, 0:1] + offset[:, 0:1]  # lens centre x of the image-right lens
    lens_cy = offset[:, 1:2]
    dx = gx.abs() - lens_cx
    dy = gy - lens_cy
    # superellipse outline |x|^e + |y|^e = 1; the lens ends where the rim starts, at (1 - rim)^e (compared in
    # powers, so each pixel takes two powers instead of three)
    expo = app.glasses_shape.unsqueeze(1)
    lx, ly = dx / half_w, dy / half_h
    shape = torch.exp(expo * torch.log(lx.abs().clamp_min(1e-6))) + torch.exp(
        expo * torch.log(ly.abs().clamp_min(1e-6))
    )
    rim_mm = app.glasses_rim.unsqueeze(1)
    inner = (1.0 - rim_mm / (0.5 * (half_w + half_h))).clamp_min(0.0).pow(expo)
    lens = (shape < inner).to(d.dtype)
    rim = ((shape >= inner) & (shape < 1.0)).to(d.dtype)
    # bridge across the nose and the temples out to the sides, at the top of the lenses
    bridge = (gx.abs() < lens_cx - half_w * 0.9) & ((gy - (lens_cy - 0.55 * half_h)).abs() < 0.45 * rim_mm + 0.6)
    temple = (gx.abs() > lens_cx + half_w * 0.95) & ((gy - (lens_cy - 0.6 * half_h)).abs() < 1.3)
    rim = (rim + bridge.to(d.dtype) + temple.to(d.dtype)).clamp(0.0, 1.0)
    # a ray crossing the lens h mm from its optical centre turns by h / f (f in mm = 1000 / dioptres)
    h = torch.stack((gx - torch.sign(gx) * lens_cx, dy))  # 2 x B x N
    power = (app.glasses_power / 1000.0).unsqueeze(1)
    bent = torch.cat((d[:2] - h * power * d[2:3], d[2:]))
    through = lens > 0
    return (
        torch.where(through, hit, o),
        torch.where(through, _normalize(bent), d),
        {"lens": lens, "rim": rim, "lens_x": lx, "lens_y": ly},
    )


def _composite_glasses(
    app: Appearance, scene: Scene, glass: dict[str, Tensor], colour: Tensor, light: Tensor
) -> Tensor:
    """Lens tint, coating and screen reflections over the lens; shaded rims in front of everything."""
    lx, ly = glass["lens_x"], glass["lens_y"]
    # the screen in front of the user reflects as a soft bright patch; the coating adds a coloured sheen
    screen = _smoothstep(0.9, 0.4, (lx - 0.15).abs()) * _smoothstep(0.9, 0.3, (ly + 0.35).abs())
    refl = 0.10 * screen * scene.screen_glow.unsqueeze(1) * _rgb(colour, 0.8, 0.85, 1.0)
    refl = refl + 0.015 * _planar(app.glasses_coating) * (0.5 + 0.5 * ly)
    # lenses and rims face the camera: their lighting is one value per image (3 x B x 1)
    normal = _rgb(colour, 0.0, 0.0, -1.0)
    glare = _specular(scene, normal, light, power=250.0, strength=0.8)
    through = colour * _planar(app.glasses_tint) + refl + glare
    c = colour + (through - colour) * glass["lens"]
    rim_light = _ambient(scene, torch.zeros_like(scene.blink).unsqueeze(1)) + _diffuse(scene, normal, light, wrap=0.5)
    rim_rgb = _planar(app.glasses_rim_color) * rim_light + _specular(scene, normal, light, 40.0, 0.3)
    return c + (rim_rgb - c) * glass["rim"]
