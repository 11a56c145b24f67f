"""A keypoint model's answer through the SDK: typed keypoints on each detection, and in `to_coco`."""

from __future__ import annotations

from maskrcnn_client import DetectResult


def test_keypoints_are_typed_and_exported_to_coco() -> None:
    answer = {
        "model": {"name": "kp"},
        "image": {"width": 10, "height": 10},
        "detections": [
            {"category_id": 1, "label": "person", "score": 0.5, "bbox": [1, 2, 3, 4],
             "keypoints": [1.5, 2.5, 2, 3.5, 4.5, 2], "keypoint_scores": [7.0, -1.0]},
            {"category_id": 1, "label": "person", "score": 0.4, "bbox": [1, 2, 3, 4]},
        ],
    }  # fmt: skip
    result = DetectResult.model_validate(answer)
    assert result.detections[0].keypoints == [1.5, 2.5, 2, 3.5, 4.5, 2]
    assert result.detections[0].keypoint_scores == [7.0, -1.0] and result.detections[1].keypoints is None
    coco = result.to_coco(image_id=3)
    assert coco[0]["keypoints"] == [1.5, 2.5, 2, 3.5, 4.5, 2] and "keypoints" not in coco[1]
