# vgps — two commands do everything on a fresh Linux machine:
#   make reproduce   regenerate every table and figure (PROFILE=smoke|default|paper)
#   make test        unit tests + every notebook under nbval (smoke profile)
#   make lab         the notebook series in JupyterLab with the project's kernel
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
PROFILE ?= default
STAMP := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/python3/kernel.json
# every command that computes a result runs with the instruction-set pin (vgps/isa.py): the same
# bytes on AVX2 and AVX-512 machines. VGPS_ISA=native turns it off.
PIN := $(PY) -m vgps.pinned --
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED := 0

.PHONY: setup test unit nbtest test-policies test-lab lab policy-env reproduce verify datasets bench clean help

help:
	@echo "make reproduce [PROFILE=smoke|default|paper]  - regenerate figures/ and tables"
	@echo "  REPRODUCE_ARGS='--force' reruns every stage; '--only 07' one stage; '--dry-run';"
	@echo "  '--jobs 1' runs 05 and 06 one after the other instead of concurrently"
	@echo "make verify [PROFILE=...]                     - re-run the cheap stages in a scratch dir and"
	@echo "  compare every artefact's SHA-256 with the committed manifest (REPRODUCE_ARGS='--only 04')"
	@echo "make test                                     - unit tests + notebooks under nbval + test-policies + test-lab"
	@echo "make lab [LAB_PORT=8888] [LAB_ARGS=--no-browser] - the notebooks in JupyterLab, project kernel; prints the URL"
	@echo "make test-lab                                 - headless Chromium opens notebook 04 in JupyterLab: its images render"
	@echo "make test-policies                            - steer real Octo / tf_agents / transformers code served from its own env"
	@echo "make policy-env POLICY=octo|rt1x|openvla      - build a real policy's environment (Python 3.10)"
	@echo "  make nbtest NOTEBOOKS=notebooks/07_real_robot_logs.ipynb  - nbval on some notebooks"
	@echo "make bench [BENCH=data|envs|critic|overhead]  - performance tables (all, or one)"
	@echo "make setup | clean"

setup: $(STAMP) $(KERNEL)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON_SYS) >/dev/null || { echo "ERROR: $(PYTHON_SYS) not found; install Python 3.11"; exit 1; }
	@bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) pip install -q --compile-bytecode -p $(PY) -r requirements.lock
	$(UV) pip install -q -p $(PY) --no-deps -e .
	@touch $(STAMP)

$(KERNEL): $(STAMP) vgps/isa.py vgps/pinned.py
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -m vgps.pinned --write-kernelspec $(KERNEL)

unit: setup
	$(PIN) $(PY) -m pytest -q -n 2 --dist loadfile --ignore-glob='tests/test_envs_*' --ignore=tests/test_lab_browser.py tests
	@# MuJoCo's OSMesa/EGL context and TensorFlow segfault in one process: env tests run apart
	$(PIN) $(PY) -m pytest -q -p no:xdist -m "not isolated" tests/test_envs_*.py
	$(PIN) $(PY) -m pytest -q -p no:xdist -m "isolated" tests/test_envs_dataset.py

nbtest: setup
	VGPS_PROFILE=smoke $(PIN) $(PY) scripts/run_nbval.py $(NOTEBOOKS)

test: setup
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory test-policies
	$(MAKE) --no-print-directory test-lab

# a real policy's own environment (docs/serving.md): make policy-env POLICY=octo [OCTO_SRC=...]
POLICY ?= octo
policy-env: setup
	scripts/policy_env.sh $(POLICY) $(OCTO_SRC)

# real upstream code (Octo from ../shared/external/octo; tf_agents for RT-1-X) served from its own
# environment and steered from ours
test-policies: setup
	VGPS_OCTO_PYTHON="$$(scripts/policy_env.sh octo $(OCTO_SRC) | tail -1)" && \
	VGPS_RT1X_PYTHON="$$(scripts/policy_env.sh rt1x | tail -1)" && \
	VGPS_OPENVLA_PYTHON="$$(scripts/policy_env.sh openvla | tail -1)" && \
	  export VGPS_OCTO_PYTHON VGPS_RT1X_PYTHON VGPS_OPENVLA_PYTHON && \
	  $(PIN) $(PY) -m pytest -q -p no:xdist tests/test_policies_real.py

# the series in JupyterLab (scripts/lab.py): notebooks/ on 127.0.0.1:8888 (or the next free port), the
# python3 kernel of $(KERNEL), a fresh token; the URL is printed
LAB_ARGS ?=
lab: setup
	$(PY) scripts/lab.py $(if $(LAB_PORT),--port $(LAB_PORT)) $(LAB_ARGS)

# a real headless Chromium (Debian's package, installed here if missing) opens notebook 04 in
# JupyterLab: every image output renders; screenshots in artifacts/test/
test-lab: setup
	@bash scripts/install_system_deps.sh chromium
	$(PIN) $(PY) -m pytest -q -s -p no:xdist tests/test_lab_browser.py

datasets: setup
	$(PIN) $(PY) -m vgps.envs.generate --profile $(PROFILE)

reproduce: setup
	$(PIN) $(PY) scripts/reproduce.py --profile $(PROFILE) $(REPRODUCE_ARGS)

verify: setup
	$(PIN) $(PY) scripts/reproduce.py --profile $(PROFILE) --verify $(REPRODUCE_ARGS)

bench: setup
	$(PIN) $(PY) -m bench $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "kept artifacts/ (trained models, datasets); rm -rf artifacts to drop them"
