# spaces-runtime SDK image: static on Python 3.11.
# Built once per machine and shared by every app that uses this SDK version, so an app build adds only its
# own packages, requirements and code.
FROM spaces-runtime/base:bookworm-py3.11

USER root
# Hugging Face runs Spaces as uid 1000 named "user" with the app in /home/user/app and storage at /data
RUN (getent passwd 1000 >/dev/null || useradd --create-home --uid 1000 --user-group --shell /bin/bash user) \
 && mkdir -p /home/user/app /data \
 && chown -R 1000:1000 /home/user /data

# the base image must carry the Python the app asks for: nothing can download another one in here
RUN found="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
 && if [ "$found" != "3.11" ]; then \
      echo "the base image spaces-runtime/base:bookworm-py3.11 has Python $found but the app asks for Python 3.11;" \
           "set SPACES_BASE_IMAGE to an image with Python 3.11" >&2; exit 1; fi

ENV HOME=/home/user \
    VIRTUAL_ENV=/home/user/.venv \
    PATH=/home/user/.venv/bin:/home/user/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/home/user/app \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

USER 1000:1000
WORKDIR /home/user/app

EXPOSE 7860
