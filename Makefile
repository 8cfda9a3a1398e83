# redrive — see README.md. `make`, `make test`, `make demo`, `make asan`,
# `make bench`, `make itest` (a real n8n), `make install PREFIX=...`.

B       ?= build
PREFIX  ?= /usr/local
PKGS    := libcurl libcjson libuv sqlite3 zlib libpq
LUAPKG  := lua5.4
CC      ?= cc
SAN     ?=

DEPS_OK := $(shell ./scripts/deps >&2 && echo ok)
ifneq ($(DEPS_OK),ok)
$(error missing Debian packages, see above)
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -MMD -MP \
           -Iinclude -Isrc $(shell pkg-config --cflags $(PKGS) $(LUAPKG))
# libcurl and libpq are found with pkg-config for their headers but loaded
# with dlopen on first use (src/http/curl_dl.c, src/store/pg_dl.c): linking
# them would cost every start ~4 ms each.
LIBS    := $(shell pkg-config --libs $(filter-out libcurl libpq,$(PKGS))) -ldl -lpthread -lm
LUALIB  := $(shell pkg-config --libs $(LUAPKG))
EDITLIB := $(shell pkg-config --libs libedit)
ifneq ($(SAN),)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# The core never includes lua.h; bindings (src/lua) and the CLI do.
CORE_SRC := $(wildcard src/core/*.c src/loop/*.c src/http/*.c src/json/*.c \
                       src/store/*.c src/engine/*.c)
BIND_SRC := $(wildcard src/lua/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
LUA_SRC  := $(shell find lua/redrive -name '*.lua' 2>/dev/null | sort)
TEST_SRC := $(wildcard tests/c/test_*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
BIND_OBJ := $(BIND_SRC:%.c=$(B)/%.o) $(B)/gen/luafiles.o
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o) $(B)/tests/c/runner.o

all: $(B)/redrive $(B)/redrive.so redrive redrive.so

redrive: $(B)/redrive
	@[ "$(B)" = build ] && ln -sf $(B)/redrive redrive || true
redrive.so: $(B)/redrive.so
	@[ "$(B)" = build ] && ln -sf $(B)/redrive.so redrive.so || true

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Pure-Lua parts are compiled into the binary and the module (package.preload),
# so a cron start searches no paths.
$(B)/gen/luafiles.c: scripts/embed.lua $(LUA_SRC)
	@mkdir -p $(dir $@)
	lua5.4 scripts/embed.lua $@ $(LUA_SRC)
$(B)/gen/luafiles.o: $(B)/gen/luafiles.c
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libredrive.a: $(CORE_OBJ) $(BIND_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/redrive: $(CLI_OBJ) $(B)/libredrive.a
	$(CC) $(LDFLAGS) -rdynamic -o $@ $(CLI_OBJ) $(B)/libredrive.a $(LUALIB) $(EDITLIB) $(LIBS)

# Loadable by stock lua5.4: Lua symbols come from the host interpreter.
$(B)/redrive.so: $(CORE_OBJ) $(BIND_OBJ)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(LIBS)

$(B)/test_c: $(TEST_OBJ) $(B)/libredrive.a
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(B)/libredrive.a $(LUALIB) $(LIBS)

$(B)/testserver: $(B)/tests/server/server.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

test: all $(B)/test_c $(B)/testserver
	@./scripts/deps --test
	@B=$(B) SAN=$(SAN) ./tests/run

# The n8n source against a real n8n (installed once by scripts/n8n).
itest: all $(B)/testserver
	@B=$(B) ./tests/itest/run

asan:
	@$(MAKE) --no-print-directory B=build/asan SAN=1 test

valgrind: all $(B)/test_c $(B)/testserver
	@B=$(B) VALGRIND=1 ./tests/run

demo: all $(B)/testserver
	@./examples/demo.sh

bench: all $(B)/testserver
	@./scripts/deps --bench
	@B=$(B) ./bench/run

reliability: all $(B)/test_c $(B)/testserver
	@B=$(B) RD_FULL=1 ./tests/run reliability

fuzz:
	@./scripts/deps --fuzz
	@./fuzz/run

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/5.4 \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/redrive/types
	install -m 755 $(B)/redrive $(DESTDIR)$(PREFIX)/bin/redrive
	install -m 644 $(B)/redrive.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/redrive.so
	install -m 644 include/redrive.h $(DESTDIR)$(PREFIX)/include/redrive.h
	install -m 644 docs/redrive.1 $(DESTDIR)$(PREFIX)/share/man/man1/redrive.1
	install -m 644 lua/types/*.lua $(DESTDIR)$(PREFIX)/share/redrive/types/

clean:
	rm -rf build redrive redrive.so

.PHONY: all test itest asan valgrind demo bench reliability fuzz install clean redrive redrive.so

-include $(shell find $(B) -name '*.d' 2>/dev/null)
