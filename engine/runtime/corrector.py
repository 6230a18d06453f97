"""The real-time gaze corrector: frame -> face -> pose -> strip -> network -> paste -> frame.

One :class:`Corrector` per stream (it keeps the face tracker and each face's filters); the network
(:class:`engine.runtime.backends.Backend`) is shared between streams. All faces of a frame go through the
network in one batched call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from engine.runtime.backends.base import Backend, NetOutputs
from engine.runtime.face import FaceLandmarks, FaceTracker
from engine.runtime.gating import Gates, NaturalLookAway, angle_between_deg, eye_openness, linear_fade
from engine.runtime.paste import EyeRegions, Patch, face_patches, make_eye_regions, write_patches
from engine.runtime.pose import HeadPose, PoseEstimator, camera_matrix
from engine.runtime.settings import Mode, Settings
from engine.runtime.strip_cut import cut_strip, frame_to_strip_homography, strip_to_chw
from engine.runtime.telemetry import FaceTelemetry, StageTimer, Telemetry
from engine.runtime.tracking import FaceTrack, FaceTracks
from engine.strip import DEFAULT_EYE_MODEL, DEFAULT_STRIP, EyeModel, StripGeometry

logger = logging.getLogger(__name__)

Uint8Array = NDArray[np.uint8]
Float64Array = NDArray[np.float64]
Float32Array = NDArray[np.float32]

# Below this applied strength the paste also fades its opacity: at strength 0 a trained network returns its
# reconstruction, which is close to but not exactly the input, and switching from it to the untouched frame
# in one step would show as a flicker.
OPACITY_FULL_AT = 0.25


@dataclass
class PreparedFrame:
    """A frame between :meth:`Corrector.prepare` and :meth:`Corrector.finish`: the network's inputs and what the
    corrector needs to finish it.

    ``strips`` N x 3 x H x W float32 in [0, 1] (N may be 0: no face, mode off), ``targets`` N x 2 float32 target
    gaze (pitch, yaw) in radians, ``strengths`` N float32 in [0, 1]: the three arguments of
    :meth:`engine.runtime.backends.Backend.run`. Treat the rest as private to the corrector.
    """

    frame: Uint8Array
    settings: Settings
    telemetry: Telemetry
    strips: Float32Array
    targets: Float32Array
    strengths: Float32Array
    timestamp_s: float
    _owner: Corrector = field(repr=False)
    _faces: list[_Face] = field(repr=False)
    _timer: StageTimer = field(repr=False)
    _prepare_ms: float = 0.0
    _finished: bool = False

    @property
    def batch(self) -> int:
        """N, the number of strips for the network (0: skip the network and finish with ``outputs=None``)."""
        return int(self.strips.shape[0])


def batch_inputs(prepared: Sequence[PreparedFrame]) -> tuple[Float32Array, Float32Array, Float32Array, list[int]]:
    """The concatenated network inputs of several prepared frames and the size of each one's share.

    ``strips, targets, strengths, sizes = batch_inputs(frames)``; run the backend once (if ``sum(sizes)``), then
    ``outputs.split(sizes)`` gives each frame its part, in order.
    """
    if not prepared:
        raise ValueError("batch_inputs needs at least one prepared frame")
    sizes = [p.batch for p in prepared]
    strips = np.concatenate([p.strips for p in prepared])
    targets = np.concatenate([p.targets for p in prepared])
    strengths = np.concatenate([p.strengths for p in prepared])
    return strips, targets, strengths, sizes


@dataclass
class _Face:
    """One face while a frame is processed."""

    track: FaceTrack
    landmarks: FaceLandmarks
    openness: tuple[float, float]
    pose: HeadPose
    homography: Float64Array
    target_deg: tuple[float, float]
    gates: Gates
    strength: float = 0.0


class Corrector:
    """Redirects the gaze of every face in a stream of frames.

    ``video=True`` treats successive calls as one video: MediaPipe tracks faces, landmarks, pose and gaze are
    smoothed over time, and the strength ramps over ``Settings.ramp_frames`` frames. ``video=False`` treats
    every frame as a separate photo: no smoothing, the strength applies at once. ``fps`` is the frame rate
    assumed when :meth:`process` gets no timestamps.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        video: bool = True,
        fps: float = 30.0,
        geometry: StripGeometry = DEFAULT_STRIP,
        eye_model: EyeModel = DEFAULT_EYE_MODEL,
        regions: EyeRegions | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if (backend.geometry.height, backend.geometry.width) != (geometry.height, geometry.width):
            raise ValueError("the backend was built for a different strip size than the corrector's geometry")
        self.backend = backend
        self.video = video
        self.fps = fps
        self.geometry = geometry
        self.regions = make_eye_regions(geometry, eye_model) if regions is None else regions
        self._pose = PoseEstimator(eye_model)
        self._tracker: FaceTracker | None = None
        self._tracks = FaceTracks()
        self._frame_index = 0

    # --- lifecycle -------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all faces (e.g. after a scene cut); the next frame starts the ramps from zero."""
        self._tracks.reset()
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    def close(self) -> None:
        """Release the face tracker (the backend belongs to the caller and stays open)."""
        self.reset()

    def __enter__(self) -> Corrector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the frame -------------------------------------------------------------------------------------

    def process(
        self, frame_rgb: Uint8Array, settings: Settings, timestamp_s: float | None = None, *, in_place: bool = False
    ) -> tuple[Uint8Array, Telemetry]:
        """Correct one ``H x W x 3`` uint8 RGB frame; return the output frame and what happened.

        The input is not modified unless ``in_place`` (then the corrected eyes are written into it and it is
        returned, saving the whole-frame copy: 0.19 ms of a 1280 x 720 frame on an H200 host, by
        ``bench/gpu_runtime.py``). When nothing is changed (mode ``off`` or ``estimate``, no face, closed eyes)
        the input array itself is returned; the telemetry's eye boxes say what was written. ``timestamp_s``
        (seconds, increasing) drives the smoothing; without it frames are taken to be ``1 / fps`` apart. This is
        :meth:`prepare`, one network call on this corrector's backend (none without faces), then :meth:`finish`.
        """
        prepared = self.prepare(frame_rgb, settings, timestamp_s)
        outputs: NetOutputs | None = None
        net_ms = 0.0
        if prepared.batch:
            start = time.perf_counter()
            outputs = self.backend.run(prepared.strips, prepared.targets, prepared.strengths)
            net_ms = (time.perf_counter() - start) * 1000.0
        return self.finish(prepared, outputs, net_ms=net_ms, in_place=in_place)

    def prepare(self, frame_rgb: Uint8Array, settings: Settings, timestamp_s: float | None = None) -> PreparedFrame:
        """Everything before the network: find the faces, fit their poses, gate, and cut their strips.

        The returned :class:`PreparedFrame` holds the network inputs (``strips``, ``targets``, ``strengths``, with
        N = 0 when there is nothing to run). A scheduler serving many streams concatenates the inputs of several
        prepared frames, runs one backend call, splits the outputs with :meth:`NetOutputs.split`, and passes each
        part to :meth:`finish` of the corrector that prepared it. Frames of one stream must be prepared in order.
        """
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame must be H x W x 3 uint8 RGB, got {frame_rgb.shape} {frame_rgb.dtype}")
        begin = time.perf_counter()
        index = self._frame_index
        self._frame_index += 1
        now = index / self.fps if timestamp_s is None else timestamp_s
        timer = StageTimer()
        telemetry = Telemetry(frame_index=index, mode=settings.mode, backend=self.backend.name)
        faces: list[_Face] = []
        if settings.mode is Mode.OFF:
            self._tracks.reset()  # when switched back on, faces ramp in again instead of jumping
        else:
            with timer.stage("face"):
                landmarks = self._face_tracker(settings).detect(frame_rgb)[: settings.max_faces]
                tracks = self._tracks.update(landmarks) if self.video else FaceTracks().update(landmarks)
            with timer.stage("pose"):
                camera = camera_matrix(frame_rgb.shape[1], frame_rgb.shape[0], settings.focal_scale)
                faces = [
                    face
                    for track, lm in zip(tracks, landmarks, strict=True)
                    if (face := self._measure(track, lm, camera, settings, now)) is not None
                ]
        geo = self.geometry
        strips = np.empty((len(faces), 3, geo.height, geo.width), np.float32)
        if faces:
            with timer.stage("strip"):
                for i, face in enumerate(faces):
                    strip_to_chw(cut_strip(frame_rgb, face.homography, geo), strips[i])
        return PreparedFrame(
            frame=frame_rgb,
            settings=settings,
            telemetry=telemetry,
            strips=strips,
            targets=np.radians(np.array([f.target_deg for f in faces], dtype=np.float32).reshape(-1, 2)),
            strengths=np.array([f.strength for f in faces], dtype=np.float32),
            timestamp_s=now,
            _owner=self,
            _faces=faces,
            _timer=timer,
            _prepare_ms=(time.perf_counter() - begin) * 1000.0,
        )

    def finish(
        self, prepared: PreparedFrame, outputs: NetOutputs | None, *, net_ms: float = 0.0, in_place: bool = False
    ) -> tuple[Uint8Array, Telemetry]:
        """Everything after the network: paste the corrected eyes back and complete the telemetry.

        ``outputs`` are the network's outputs for exactly ``prepared``'s strips (``prepared.batch`` of them), or
        None when there are none or the network could not run: then the frame goes out untouched (fail open)
        and each face reports strength 0. ``net_ms`` is the network time to report for this frame (for a
        batched call across streams, the caller decides how to attribute it). Each prepared frame is finished
        once, by the corrector that prepared it. ``in_place`` writes into the prepared frame (see :meth:`process`).
        """
        if prepared._owner is not self:
            raise ValueError("this frame was prepared by another Corrector; finish it with that one")
        if prepared._finished:
            raise RuntimeError(f"frame {prepared.telemetry.frame_index} was already finished")
        if outputs is not None and outputs.batch != prepared.batch:
            raise ValueError(f"got network outputs for {outputs.batch} strips, the frame has {prepared.batch}")
        prepared._finished = True
        begin = time.perf_counter()
        frame_rgb, faces, timer, telemetry = prepared.frame, prepared._faces, prepared._timer, prepared.telemetry
        out = frame_rgb
        if faces:
            if outputs is None:
                for face in faces:
                    face.strength = 0.0  # nothing was applied
                boxes: list[list[tuple[int, int, int, int]]] = [[] for _ in faces]
            else:
                timer.add("net", net_ms)
                for i, face in enumerate(faces):
                    self._update_gaze(face, outputs.gaze_estimate[i], prepared.timestamp_s)
                with timer.stage("paste"):
                    out, boxes = self._paste(frame_rgb, faces, outputs, prepared.settings, in_place)
            telemetry.faces = [self._face_telemetry(f, b) for f, b in zip(faces, boxes, strict=True)]
        telemetry.timings_ms = dict(timer.ms)
        telemetry.total_ms = prepared._prepare_ms + net_ms + (time.perf_counter() - begin) * 1000.0
        return out, telemetry

    def _paste(
        self, frame_rgb: Uint8Array, faces: list[_Face], outputs: NetOutputs, settings: Settings, in_place: bool
    ) -> tuple[Uint8Array, list[list[tuple[int, int, int, int]]]]:
        """The corrected frame (the input itself if nothing changes, or if ``in_place``) and the boxes written
        per face."""
        boxes: list[list[tuple[int, int, int, int]]] = [[] for _ in faces]
        if settings.mode is not Mode.CORRECT:
            return frame_rgb, boxes
        # Every face reads the untouched frame before any is written, so in place is as correct as a copy.
        patches: list[Patch] = []
        for i, face in enumerate(faces):
            if face.strength <= 0.0:
                continue
            # No residual at all at gain 0: one resampling less per eye, and exactly the warp.
            gain = settings.residual_gain
            residual = outputs.residual[i] * (outputs.mask[i] * gain) if gain > 0 else None
            opacity = min(face.strength / OPACITY_FULL_AT, 1.0)
            face_boxes = face_patches(frame_rgb, face.homography, outputs.flow[i], residual, opacity, self.regions)
            boxes[i] = [patch.box for patch in face_boxes]
            patches.extend(face_boxes)
        if not patches:
            return frame_rgb, boxes
        out = frame_rgb if in_place else frame_rgb.copy()
        write_patches(out, patches)
        return out, boxes

    # --- stages ----------------------------------------------------------------------------------------

    def _face_tracker(self, settings: Settings) -> FaceTracker:
        if self._tracker is None or self._tracker.max_faces != settings.max_faces:
            if self._tracker is not None:
                self._tracker.close()
            self._tracker = FaceTracker(max_faces=settings.max_faces, video=self.video)
        return self._tracker

    def _measure(
        self, track: FaceTrack, raw: FaceLandmarks, camera: Float64Array, settings: Settings, now: float
    ) -> _Face | None:
        """Smooth the landmarks, fit the pose, decide the target and strength; None if the pose fit fails."""
        landmarks = raw
        if self.video:
            landmarks = FaceLandmarks(track.landmarks(raw.points, now, scale=max(raw.size(), 1.0)))
        pose = self._pose.estimate(landmarks.points, camera, track.pose)
        if pose is None:
            logger.debug("head-pose fit failed for face %d", track.track_id)
            return None
        if self.video:
            centre = track.position(pose.centre, now, scale=float(np.linalg.norm(pose.centre)))
            pose = HeadPose.from_vectors(track.rotation(pose.rotation_vector(), now), centre)
        track.pose = pose
        openness = eye_openness(landmarks.points)
        target = self._target(track, settings)
        gates = self._gates(track, pose, openness, target, settings)
        face = _Face(
            track,
            landmarks,
            openness,
            pose,
            frame_to_strip_homography(camera, pose, self.geometry),
            target,
            gates,
        )
        face.strength = self._strength(track, gates, settings)
        return face

    def _target(self, track: FaceTrack, settings: Settings) -> tuple[float, float]:
        pitch, yaw = settings.target_deg
        if not (self.video and settings.natural_look_away and settings.mode is Mode.CORRECT):
            track.look_away = None
            return pitch, yaw
        if track.look_away is None:
            # Each face gets its own sequence (seed + track id), so two people do not glance in lockstep.
            track.look_away = NaturalLookAway(
                settings.natural_look_away_max_deg,
                settings.natural_look_away_interval,
                settings.natural_look_away_seed + track.track_id,
            )
        dp, dy = track.look_away.step()
        return pitch + dp, yaw + dy

    @staticmethod
    def _gates(
        track: FaceTrack,
        pose: HeadPose,
        openness: tuple[float, float],
        target: tuple[float, float],
        settings: Settings,
    ) -> Gates:
        # Either eye closed stops the correction: redirecting one open eye next to a closed one looks wrong.
        blink = 1.0 if min(openness) >= settings.blink_threshold else 0.0
        look_away = 1.0
        if track.gaze_deg is not None:
            # The estimate is from the previous frame (this frame's comes out of the same network call).
            away = angle_between_deg(track.gaze_deg, target)
            look_away = linear_fade(away, settings.look_away_start_deg, settings.look_away_end_deg)
        head = linear_fade(pose.angle_from_camera_deg(), settings.head_start_deg, settings.head_end_deg)
        return Gates(blink=blink, look_away=look_away, head=head)

    def _strength(self, track: FaceTrack, gates: Gates, settings: Settings) -> float:
        if settings.mode is not Mode.CORRECT:
            track.strength.set(0.0)
            return 0.0
        goal = settings.strength * gates.fade
        if gates.blink <= 0.0 or not self.video:
            # A closing lid must not be redirected, so a blink stops the correction at once (and reopening
            # ramps it back in); a single photo has no frames to ramp over.
            track.strength.set(goal * gates.blink)
            return track.strength.value
        return track.strength.step(goal, settings.ramp_frames)

    def _update_gaze(self, face: _Face, estimate_rad: NDArray[np.float32], now: float) -> None:
        if face.gates.blink <= 0.0:
            return  # the network's estimate of a closed eye is meaningless
        deg = np.degrees(np.asarray(estimate_rad, dtype=np.float64))
        if self.video:
            deg = face.track.gaze(deg, now)
        face.track.gaze_deg = (float(deg[0]), float(deg[1]))

    @staticmethod
    def _face_telemetry(face: _Face, boxes: list[tuple[int, int, int, int]]) -> FaceTelemetry:
        pitch, yaw = face.pose.normalised_pitch_yaw()
        return FaceTelemetry(
            track_id=face.track.track_id,
            box=face.landmarks.box(),
            eye_boxes=boxes,
            openness=face.openness,
            gaze_deg=face.track.gaze_deg,
            head_deg=(math.degrees(pitch), math.degrees(yaw)),
            target_deg=face.target_deg,
            strength=face.strength,
            gates=face.gates.as_dict(),
        )


def correct_still(backend: Backend, frame_rgb: Uint8Array, settings: Settings) -> tuple[Uint8Array, Telemetry]:
    """Correct one still photo with a fresh :class:`Corrector` (photo mode: nothing carried over from other frames).

    What ``mirada correct`` does to an image, for scripts and tests that compare photos under several settings: each
    call starts with no face track, no smoothing and no look-away, so its result depends on its arguments alone.
    """
    with Corrector(backend, video=False) as corrector:
        return corrector.process(frame_rgb, settings)
