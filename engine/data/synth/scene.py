"""Ray casting of the eye region in the normalised strip camera: geometry, materials and lighting.

Everything is batched torch code over (sample, pixel). Per pixel, the ray is moved into the head frame and
intersected, in order, with the glasses' lens plane (which may bend it), the skin (a height field with eye
sockets, brow ridge and nose bridge), the lid shell of the nearer eye (an ellipsoid the lids lie on, with the
lid opening cut into it) and, through the opening, the eyeball (sclera, a flat iris disc behind the cornea,
pupil) and the cornea (for glints). The expensive shading only runs on the pixels that need it.

Units: millimetres and radians; colours are linear RGB radiance (the camera model applies exposure and gamma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

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


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _normalize(v: Tensor) -> Tensor:
    out: Tensor = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return out


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
) -> Render:
    """Ray-cast a batch of eye strips at ``height`` x ``width`` (same field of view as ``geometry``)."""
    b = len(scene)
    if len(app) != b:
        raise ValueError(f"appearance has {len(app)} subjects but the scene has {b} images")
    device = scene.head.device
    n = height * width
    rays = geometry.pixel_rays(height, width).to(device).reshape(n, 3)
    rot = rotation_from_pitch_yaw(scene.head)  # B x 3 x 3, head frame -> camera frame
    centre = torch.tensor([0.0, 0.0, geometry.distance_mm], device=device)
    # head-frame ray origins and directions: o = R^T (0 - M), d = R^T d_cam
    origin = -(rot.transpose(1, 2) @ centre).unsqueeze(1).expand(b, n, 3).contiguous()  # B x N x 3
    direc = torch.einsum("nk,bkj->bnj", rays, rot).contiguous()  # B x N x 3
    light = _normalize(torch.einsum("bk,bkj->bj", scene.light_dir, rot)).unsqueeze(1)  # B x 1 x 3 (head)
    lay = eye_layout(app)

    # eyes: both turn toward the fixation point (head frame, relative to the eye-corner midpoint)
    target = scene.fixation_distance.unsqueeze(-1) * torch.einsum("bk,bkj->bj", pitch_yaw_to_vector(scene.gaze), rot)
    eye_axis = _normalize(target.unsqueeze(1) - lay.centres)  # B x 2 x 3
    in_head = vector_to_pitch_yaw(eye_axis.mean(dim=1))  # B x 2, eye-in-head (pitch, yaw)

    # glasses first: a lens bends the rays behind it (in place)
    glass = _glasses(app, lay, origin, direc)

    # the face surface: Newton steps on depth(t) - height(x(t), y(t)), starting from the plane z = 0
    ox, oy, oz = origin.unbind(-1)
    dx_, dy_, dz_ = direc.unbind(-1)
    t = -oz / dz_
    side = (ox + t * dx_ > 0).long()  # 0: image-left eye, 1: image-right eye
    sidef = side.float()
    cen = lay.centres.unsqueeze(1)  # B x 1 x 2 x 3
    eye_c = cen[..., 0, :] + (cen[..., 1, :] - cen[..., 0, :]) * sidef.unsqueeze(-1)  # B x N x 3
    axes = app.shell_axes
    params = {
        "eye_x": eye_c[..., 0],
        "eye_y": eye_c[..., 1],
        "eye_z": eye_c[..., 2],
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
    point = torch.stack((px, py, surf["z"]), dim=-1)

    # lids: the opening in the shell, in shell (u, v) coordinates
    mirror = sidef * 2.0 - 1.0  # +u points to the temporal corner of each eye
    u = (px - eye_c[..., 0]) * params["inv_ax"] * mirror
    v = (py - eye_c[..., 1]) * params["inv_ay"]
    lids = _lid_curves(app, scene, in_head[:, 0], u)
    inside = (surf["shell"] > 0.5) & (lids["tau"].abs() < 1.0) & (v > lids["v_up"]) & (v < lids["v_lo"])

    colour = _shade_face(app, scene, noise, point, surf, eye_c, light, params, v, lids)
    eyeball_visible = torch.zeros(b, n, device=device)
    idx = inside.nonzero(as_tuple=True)
    if idx[0].numel() > 0:
        eye_rgb, hit = _shade_eye(app, scene, noise, lay, eye_axis, origin, direc, idx, side, light, v, lids)
        colour[idx] = eye_rgb
        eyeball_visible[idx] = hit
    colour = _lashes(app, colour, v, lids, surf["shell"], noise, side)
    colour = _composite_glasses(app, scene, glass, colour, light)
    eyeball_visible = eyeball_visible * (1.0 - glass["rim"])

    # pupil centres (centre of the iris disc) projected into the full-resolution strip
    iris_depth = torch.sqrt((lay.radius**2 - app.iris_radius**2).clamp_min(1.0)).view(b, 1, 1)
    pupil_cam = torch.einsum("bij,bej->bei", rot, lay.centres + eye_axis * iris_depth) + centre
    return Render(
        radiance=colour.view(b, height, width, 3).permute(0, 3, 1, 2).contiguous(),
        mask=eyeball_visible.view(b, 1, height, width),
        pupil_px=geometry.project(pupil_cam),
        openness=lids["openness"],
    )


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


def _ambient(scene: Scene, ny: Tensor) -> Tensor:
    """Hemispherical ambient light for normals with head-frame y component ``ny`` (y is down)."""
    w = (0.5 - 0.5 * ny).unsqueeze(-1)  # 1 facing up, 0 facing down
    return scene.ambient.unsqueeze(1) * w + scene.ambient_below.unsqueeze(1) * (1.0 - w)


def _diffuse(scene: Scene, normal: Tensor, light: Tensor, wrap: float) -> Tensor:
    """Wrapped Lambert term (soft terminator, as skin scatters light under its surface), with light colour."""
    ndl = ((_dot(normal, light) + wrap) / (1.0 + wrap)).clamp_min(0.0)
    return ndl.unsqueeze(-1) * scene.light_color.unsqueeze(1)


def _specular(scene: Scene, normal: Tensor, light: Tensor, power: float, strength: float | Tensor) -> Tensor:
    """Blinn-Phong highlight for a camera looking along +z (the view vector points to -z)."""
    view = torch.tensor([0.0, 0.0, -1.0], device=normal.device)
    half = _normalize(light + view)
    s = _dot(normal, half).clamp_min(0.0).pow(power) * strength
    return s.unsqueeze(-1) * scene.light_color.unsqueeze(1)


def _shade_face(
    app: Appearance,
    scene: Scene,
    noise: NoiseBank,
    point: Tensor,
    surf: dict[str, Tensor],
    eye_c: Tensor,
    light: Tensor,
    params: dict[str, Tensor],
    v: Tensor,
    lids: dict[str, Tensor],
) -> Tensor:
    """Skin and eyelids: texture, socket shading, lid crease, eyeliner, the wet lower-lid margin, eyebrows."""
    x, y = point[..., 0], point[..., 1]
    normal = _normalize(torch.stack((surf["gx"], surf["gy"], -torch.ones_like(x)), dim=-1))
    off = app.tex_offset.unsqueeze(1)
    low = noise.sample(SKIN_LOW, x * (1.0 / 90.0) + off[..., 0], y * (1.0 / 90.0) + off[..., 1])
    mid = noise.sample(SKIN_MID, x * (1.0 / 60.0) + off[..., 1], y * (1.0 / 60.0) + off[..., 0])
    tex = 1.0 + app.skin_texture.unsqueeze(1) * ((low - 0.5) * 2.0 + (mid - 0.5) * 0.8)
    shell = surf["shell"]
    # lids are a little pinker/darker than the face; the socket darker still (less light reaches into it)
    lid_tint = 1.0 + (app.lid_tint.unsqueeze(1) - 1.0) * shell.unsqueeze(-1)
    depth = (surf["z"] - (x * x * (1.0 / 400.0) - 2.0)).clamp_min(0.0) / (params["socket"] + 1.0)
    depth = depth.clamp(0.0, 1.0)
    dark_circle = torch.exp(-(((y - 11.0) * 0.25) ** 2) - ((x - eye_c[..., 0]) * (1.0 / 12.0)) ** 2)
    albedo = app.skin.unsqueeze(1) * (tex * (1.0 - 0.12 * depth) * (1.0 - 0.12 * dark_circle)).unsqueeze(-1)
    albedo = albedo * lid_tint

    # lid crease above the margin (flattening as the lid closes), eyeliner on the margin
    d_up = lids["v_up"] - v  # > 0 above the upper margin (on the lid)
    d_lo = v - lids["v_lo"]  # > 0 below the lower margin
    in_span = (1.0 - _smoothstep(0.85, 1.15, lids["tau"].abs())) * shell
    crease_gap = 0.22 + 0.55 * lids["up_open"]
    crease = torch.exp(-(((d_up - crease_gap) * 18.0) ** 2)) * in_span
    liner = app.eyeliner.unsqueeze(1) * torch.exp(-((d_up.clamp_min(0.0) * 16.0) ** 2)) * (d_up > -0.01) * in_span
    albedo = albedo * (1.0 - 0.3 * crease - 0.8 * liner).clamp(0.05, 1.0).unsqueeze(-1)
    water = torch.exp(-((d_lo.clamp_min(0.0) * 28.0) ** 2)) * (d_lo > -0.005) * in_span
    pink = torch.tensor([0.33, 0.15, 0.13], device=x.device)
    albedo = albedo + (pink - albedo) * (0.6 * water).unsqueeze(-1)
    albedo = _eyebrows(app, noise, point, albedo)

    ao = (1.0 - 0.25 * depth).unsqueeze(-1)
    light_in = _ambient(scene, normal[..., 1]) * ao + _diffuse(scene, normal, light, wrap=0.3)
    return albedo * light_in + _specular(scene, normal, light, power=24.0, strength=0.05 + 0.35 * water)


def _eyebrows(app: Appearance, noise: NoiseBank, p: Tensor, albedo: Tensor) -> Tensor:
    """Blend hair into the skin albedo along each brow (tapering arch, strands pointing outward).

    Only the upper half of the strip can show brows, so only that half is computed.
    """
    rows = p.shape[1] // 2
    x, y = p[:, :rows, 0], p[:, :rows, 1]
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
    hair = (density * (0.35 + 0.65 * _smoothstep(0.42, 0.62, strands))).clamp(0.0, 1.0).unsqueeze(-1)
    out = albedo.clone()
    out[:, :rows] = albedo[:, :rows] + (app.hair.unsqueeze(1) - albedo[:, :rows]) * hair
    return out


def _shade_eye(
    app: Appearance,
    scene: Scene,
    noise: NoiseBank,
    lay: _Layout,
    eye_axis: Tensor,
    origin: Tensor,
    direc: Tensor,
    idx: tuple[Tensor, ...],
    side: Tensor,
    light: Tensor,
    v: Tensor,
    lids: dict[str, Tensor],
) -> tuple[Tensor, Tensor]:
    """Colour of the pixels seen through the lid opening (only those pixels: ``idx``), and whether each one
    hits the eyeball (1) or the pink tissue in the corner behind the opening (0)."""
    bi, pi = idx
    s = side[bi, pi]
    o, d = origin[bi, pi], direc[bi, pi]
    c = lay.centres[bi, s]
    a = eye_axis[bi, s]
    r = lay.radius[bi]
    lt = light[bi, 0]
    col_light = scene.light_color[bi]
    oc = o - c
    half_b = _dot(oc, d)
    disc = half_b * half_b - (_dot(oc, oc) - r * r)
    hit = disc > 0
    t = -half_b - torch.sqrt(disc.clamp_min(0.0))
    p = o + t.unsqueeze(-1) * d
    n = _normalize(p - c)
    cos_t = _dot(n, a)
    r_iris = app.iris_radius[bi]
    cos_l = torch.sqrt((1.0 - (r_iris / r) ** 2).clamp_min(0.0))

    # eye-fixed basis (e1 to the eye's right, e2 down), so the iris texture and vessels turn with the eye
    e1 = _normalize(torch.stack((a[:, 2], torch.zeros_like(a[:, 0]), -a[:, 0]), dim=-1))
    e2 = torch.linalg.cross(e1, a, dim=-1)

    # iris: a flat disc in the limbus plane, seen through the (transparent) cornea
    plane_c = c + a * (r * cos_l).unsqueeze(-1)
    tp = _dot(plane_c - o, a) / _dot(d, a)
    w = o + tp.unsqueeze(-1) * d - plane_c
    rho = (w.norm(dim=-1) / r_iris).clamp(0.0, 1.2)
    phi = torch.atan2(_dot(w, e2), _dot(w, e1))
    rho_p = (scene.pupil_radius[bi] * app.pupil_scale[bi] / r_iris).clamp(0.12, 0.7)
    ph = app.iris_phase[bi]
    fibres = (
        0.5 * torch.sin(37.0 * phi + ph[:, 0] + 4.0 * rho)
        + 0.3 * torch.sin(61.0 * phi + ph[:, 1] - 6.0 * rho)
        + 0.2 * torch.sin(13.0 * phi + ph[:, 2])
    )
    crypts = noise.sample(SKIN_MID, phi * (4.0 / (2 * math.pi)) + ph[:, 3], rho * 1.5 + ph[:, 0])
    mix = _smoothstep(rho_p, rho_p + 0.45, rho).unsqueeze(-1)
    iris = app.iris_inner[bi] * (1.0 - mix) + app.iris_outer[bi] * mix
    collarette = torch.exp(-(((rho - (rho_p + 0.22)) * (1.0 / 0.07)) ** 2))
    iris = iris * (0.75 + 0.3 * fibres + 0.3 * collarette + 0.6 * (crypts - 0.5)).clamp(0.3, 2.0).unsqueeze(-1)
    iris = iris * (1.0 - 0.75 * _smoothstep(0.78, 1.0, rho)).unsqueeze(-1)  # dark limbal ring
    pupil_w = _smoothstep(rho_p - 0.035, rho_p + 0.035, rho).unsqueeze(-1)
    iris = torch.tensor([0.008, 0.007, 0.008], device=o.device) * (1.0 - pupil_w) + iris * pupil_w

    # sclera: off-white, redder and darker toward the corners, with faint vessels turning with the eye
    lon = torch.atan2(_dot(n, e1), -cos_t)
    lat = torch.asin(_dot(n, e2).clamp(-1.0, 1.0))
    off = app.tex_offset[bi]
    vessel = noise.sample(VESSELS, lon * (1.0 / 1.3) + off[:, 0] + s * 0.37, lat * (1.0 / 1.3) + off[:, 1])
    periphery = (1.0 - cos_t).clamp(0.0, 1.0)
    redness = (app.vessels[bi] * _smoothstep(0.55, 0.9, vessel) * (0.3 + 1.4 * periphery)).clamp(0.0, 1.0)
    vessel_rgb = torch.tensor([0.45, 0.10, 0.08], device=o.device)
    sclera = app.sclera[bi] * (1.0 - 0.35 * periphery).unsqueeze(-1)
    sclera = sclera + (vessel_rgb - sclera) * (0.55 * redness).unsqueeze(-1)

    limbus = _smoothstep(cos_l - 0.03, cos_l + 0.01, cos_t).unsqueeze(-1)
    albedo = sclera * (1.0 - limbus) + iris * limbus

    # lighting: lid shadow under the upper margin, occlusion in the corners
    vv = v[bi, pi]
    shadow = 1.0 - 0.6 * torch.exp(-(vv - lids["v_up"][bi, pi]).clamp_min(0.0) * 10.0)
    shadow = shadow * (1.0 - 0.25 * torch.exp(-(lids["v_lo"][bi, pi] - vv).clamp_min(0.0) * 20.0))
    shadow = shadow * (1.0 - 0.45 * lids["tau"][bi, pi].abs() ** 4)
    amb_w = (0.5 - 0.5 * n[:, 1]).unsqueeze(-1)
    ambient = scene.ambient[bi] * amb_w + scene.ambient_below[bi] * (1.0 - amb_w)
    diffuse = _dot(n, lt).clamp_min(0.0).unsqueeze(-1) * col_light
    colour = albedo * (ambient + diffuse) * shadow.unsqueeze(-1)

    # cornea: glint of the light and the screen's reflection (the cornea's centre is not the eye's, so the
    # glint moves much less than the pupil when the eye turns)
    cc = c + a * (r + CORNEA_PROTRUSION - CORNEA_RADIUS).unsqueeze(-1)
    occ = o - cc
    hb = _dot(occ, d)
    dc = hb * hb - (_dot(occ, occ) - CORNEA_RADIUS**2)
    tc = -hb - torch.sqrt(dc.clamp_min(0.0))
    nc = _normalize(o + tc.unsqueeze(-1) * d - cc)
    on_cornea = ((dc > 0) & (cos_t > cos_l - 0.05)).float().unsqueeze(-1)
    half = _normalize(lt + torch.tensor([0.0, 0.0, -1.0], device=o.device))
    glint = _dot(nc, half).clamp_min(0.0).pow(600.0) * 6.0
    refl = d - 2.0 * _dot(d, nc).unsqueeze(-1) * nc  # reflected view ray, head frame
    screen = _smoothstep(0.93, 0.97, -refl[:, 2]) * _smoothstep(-0.25, -0.05, 0.05 - refl[:, 1])
    screen_rgb = torch.tensor([0.8, 0.85, 1.0], device=o.device) * scene.screen_glow[bi].unsqueeze(-1)
    wet = _dot(n, half).clamp_min(0.0).pow(80.0) * 0.4
    spec = on_cornea * (glint.unsqueeze(-1) * col_light + 0.25 * screen.unsqueeze(-1) * screen_rgb)
    colour = colour + spec + (1.0 - on_cornea) * wet.unsqueeze(-1) * col_light * shadow.unsqueeze(-1)

    # rays that pass the opening but miss the eyeball: the pink caruncle in the corner
    caruncle = torch.tensor([0.35, 0.12, 0.11], device=o.device) * (ambient + 0.5 * col_light)
    colour = torch.where(hit.unsqueeze(-1), colour, caruncle)
    return colour, hit.float()


def _lashes(
    app: Appearance,
    colour: Tensor,
    v: Tensor,
    lids: dict[str, Tensor],
    shell: Tensor,
    noise: NoiseBank,
    side: Tensor,
) -> Tensor:
    """Dark lash strands along the upper margin (and sparser ones along the lower margin)."""
    tau = lids["tau"]
    along = (1.0 - _smoothstep(0.7, 1.02, tau.abs())) * _smoothstep(0.3, 0.6, shell)
    d_up = lids["v_up"] - v  # > 0 above the upper margin
    length = app.lash_length.unsqueeze(1)
    # lashes fan out from the margin: strands are lines in (tau, distance from the margin)
    fan = tau * 26.0 + d_up * (3.0 * tau) / length
    off = app.tex_offset.unsqueeze(1)
    strands = noise.sample(STRANDS, fan * (1.0 / 16.0) + off[..., 0] + side * 0.3, off[..., 1] + d_up * 0.05)
    band_up = _smoothstep(-0.3 * length, 0.0, d_up) * (1.0 - _smoothstep(0.25 * length, length, d_up))
    upper = band_up * (0.25 + 0.75 * _smoothstep(0.45, 0.58, strands)) * app.lash_density.unsqueeze(1)
    d_lo = v - lids["v_lo"]
    band_lo = _smoothstep(-0.02, 0.0, d_lo) * (1.0 - _smoothstep(0.0, 0.45 * length, d_lo))
    lower = band_lo * _smoothstep(0.5, 0.65, strands) * 0.45 * app.lash_density.unsqueeze(1)
    cover = ((upper + lower) * along).clamp(0.0, 0.9).unsqueeze(-1)
    lash_rgb = app.hair.unsqueeze(1) * 0.3
    return colour + (lash_rgb - colour) * cover


def _glasses(app: Appearance, lay: _Layout, origin: Tensor, direc: Tensor) -> dict[str, Tensor]:
    """Spectacles: lens and rim coverage per pixel. Rays through a lens are bent in place in ``origin`` and
    ``direc`` (thin-lens prism deflection). Only the samples that wear glasses are computed."""
    b, n, _ = origin.shape
    lens_all = torch.zeros(b, n, device=origin.device)
    rim_all = torch.zeros(b, n, device=origin.device)
    xy_all = torch.zeros(b, n, 2, device=origin.device)
    rows = app.glasses.nonzero(as_tuple=True)[0]
    if rows.numel() == 0:
        return {"lens": lens_all, "rim": rim_all, "lens_xy": xy_all}
    o, d = origin[rows], direc[rows]
    cz = lay.centres[rows, 0, 2]
    plane_z = (cz - lay.radius[rows] - CORNEA_PROTRUSION - LENS_VERTEX_DISTANCE).unsqueeze(1)
    t = (plane_z - o[..., 2]) / d[..., 2]
    hit = o + t.unsqueeze(-1) * d
    gx, gy = hit[..., 0], hit[..., 1]
    size = app.glasses_size[rows]
    half_w, half_h = size[:, 0:1], size[:, 1:2]
    offset = app.glasses_offset[rows]
    lens_cx = lay.centres[rows, 1, 0:1] + offset[:, 0:1]  # lens centre x of the image-right lens
    lens_cy = offset[:, 1:2]
    dx = gx.abs() - lens_cx
    dy = gy - lens_cy
    expo = app.glasses_shape[rows].unsqueeze(1)
    shape = ((dx / half_w).abs().pow(expo) + (dy / half_h).abs().pow(expo)).pow(1.0 / expo)
    rim_mm = app.glasses_rim[rows].unsqueeze(1)
    rim_w = rim_mm / (0.5 * (half_w + half_h))
    lens = (shape < 1.0 - rim_w).float()
    rim = ((shape >= 1.0 - rim_w) & (shape < 1.0)).float()
    # bridge across the nose and the temples out to the sides, at the top of the lenses
    bridge = (gx.abs() < lens_cx - half_w * 0.9) & ((gy - (lens_cy - 0.55 * half_h)).abs() < 0.45 * rim_mm + 0.6)
    temple = (gx.abs() > lens_cx + half_w * 0.95) & ((gy - (lens_cy - 0.6 * half_h)).abs() < 1.3)
    rim = (rim + bridge.float() + temple.float()).clamp(0.0, 1.0)
    # a ray crossing the lens h mm from its optical centre turns by h / f (f in mm = 1000 / dioptres)
    h = torch.stack((gx - torch.sign(gx) * lens_cx, dy), dim=-1)
    bent = torch.cat((d[..., :2] - h * (app.glasses_power[rows] / 1000.0).view(-1, 1, 1) * d[..., 2:3], d[..., 2:]), -1)
    through = lens.unsqueeze(-1) > 0
    origin[rows] = torch.where(through, hit, o)
    direc[rows] = torch.where(through, _normalize(bent), d)
    lens_all[rows], rim_all[rows] = lens, rim
    xy_all[rows] = torch.stack((dx / half_w, dy / half_h), dim=-1)
    return {"lens": lens_all, "rim": rim_all, "lens_xy": xy_all}


def _composite_glasses(
    app: Appearance, scene: Scene, glass: dict[str, Tensor], colour: Tensor, light: Tensor
) -> Tensor:
    """Lens tint, coating and screen reflections over the lens; shaded rims in front of everything."""
    rows = app.glasses.nonzero(as_tuple=True)[0]
    if rows.numel() == 0:
        return colour
    sub = _index_scene(scene, rows)
    c = colour[rows]
    lens = glass["lens"][rows].unsqueeze(-1)
    rim = glass["rim"][rows].unsqueeze(-1)
    lx, ly = glass["lens_xy"][rows].unbind(-1)
    # the screen in front of the user reflects as a soft bright patch; the coating adds a coloured sheen
    screen = _smoothstep(0.9, 0.4, (lx - 0.15).abs()) * _smoothstep(0.9, 0.3, (ly + 0.35).abs())
    glow = sub.screen_glow.view(-1, 1, 1)
    refl = 0.10 * screen.unsqueeze(-1) * glow * torch.tensor([0.8, 0.85, 1.0], device=colour.device)
    refl = refl + 0.015 * app.glasses_coating[rows].unsqueeze(1) * (0.5 + 0.5 * ly.unsqueeze(-1))
    normal = torch.tensor([0.0, 0.0, -1.0], device=colour.device).expand_as(c)
    lt = light[rows]
    glare = _specular(sub, normal, lt, power=250.0, strength=0.8)
    through = c * app.glasses_tint[rows].unsqueeze(1) + refl + glare
    c = c + (through - c) * lens
    rim_light = _ambient(sub, torch.zeros_like(lx)) + _diffuse(sub, normal, lt, wrap=0.5)
    rim_rgb = app.glasses_rim_color[rows].unsqueeze(1) * rim_light + _specular(sub, normal, lt, 40.0, 0.3)
    out = colour.clone()
    out[rows] = c + (rim_rgb - c) * rim
    return out


def _index_scene(scene: Scene, rows: Tensor) -> Scene:
    return Scene(**{k: val[rows] for k, val in vars(scene).items()})
