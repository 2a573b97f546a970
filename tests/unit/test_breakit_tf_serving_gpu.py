"""Break-it (fixed): docker-compose.gpu.yml gives TF Serving GPU
${MLHUB_TF_SERVING_GPU:-0}, but with the default MLHUB_GPUS=auto the hub probed
every GPU and handed that same GPU to a user (TF Serving's container carries no
org.mlhub.gpus label, so the ledger never counted it). Now the hub keeps it out
of its inventory, and a MLHUB_GPUS list that names it stops startup."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from traitlets.config import Config

from hub.gpus import allocator as allocator_mod
from hub.gpus.allocator import GpuAllocator
from hub.gpus.inventory import GPU
from hub.gpus.ledger import NotEnoughGPUs
from hub.settings import SettingsError, load_settings
from hub.wiring import configure

ENV = {  # .env as README/.env.example describe a GPU host (the hub gets the whole file)
    "COMPOSE_FILE": "docker-compose.yml:docker-compose.gpu.yml",
    "MLHUB_TF_SERVING_GPU": "0",
}


class Engine:
    def containers(self, **kw):
        # TF Serving runs on GPU 0, but is not a notebook: no org.mlhub.gpus label
        return []


async def test_tf_serving_gpu_is_never_handed_to_a_user(monkeypatch):
    settings = load_settings(ENV)
    assert settings.gpus == "auto" and settings.reserved_gpus == ("0",)
    c = Config()
    configure(c, settings, read_secrets=False)
    reserved = tuple(c.MlhubSpawner.reserved_gpus)
    assert reserved == ("0",)
    monkeypatch.setattr(allocator_mod, "probe_with_engine",
                        lambda client, image: ([GPU(id="0"), GPU(id="1")], "2 GPU(s) found by nvidia-smi"))
    alloc = GpuAllocator(Engine(), ThreadPoolExecutor(1), settings.gpus, probe_image="img", reserved=reserved)
    assert [g.id for g in await alloc.inventory()] == ["1"]
    assert "kept for TF Serving" in alloc.inventory_note
    holding = await alloc.reserve("alice", "", 1, quota=1)
    assert holding.gpu_ids == ("1",) or list(holding.gpu_ids) == ["1"]
    with pytest.raises(NotEnoughGPUs):
        await alloc.reserve("bob", "", 1, quota=1)


def test_without_the_gpu_override_nothing_is_reserved():
    assert load_settings({"MLHUB_TF_SERVING_GPU": "0"}).reserved_gpus == ()


def test_listing_tf_servings_gpu_in_mlhub_gpus_stops_startup():
    with pytest.raises(SettingsError) as e:
        load_settings({**ENV, "MLHUB_GPUS": "0,1"})
    assert "MLHUB_GPUS='0,1'" in str(e.value) and "MLHUB_TF_SERVING_GPU" in str(e.value)
    assert load_settings({**ENV, "MLHUB_GPUS": "1,2"}).gpus == ("1", "2")
