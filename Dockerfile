# twinstream engine image: build the wheel and its dependencies, then run as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/twin
COPY pyproject.toml constraints.txt README.md ./
COPY twin ./twin
COPY storage ./storage
COPY flows ./flows
COPY simulators ./simulators
COPY migrations ./migrations
RUN /opt/twin/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/twin/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /home/twin --create-home twin
COPY --from=build /opt/twin /opt/twin
ENV PATH=/opt/twin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TWIN_METRICS_PORT=9108
USER twin
WORKDIR /home/twin
EXPOSE 9108 9109
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2)"
ENTRYPOINT ["twin"]
CMD ["run"]
