# Convenience targets; the scripts are the source of truth (they also install dependencies).
.PHONY: demo test build bench clean
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
build:
	bash scripts/install-deps.sh
	cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j$$(nproc) --target qtune
bench: build
	cmake --build build --target qtune_bench && ./build/qtune_bench
clean:
	rm -rf build out
