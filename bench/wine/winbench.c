// winbench: a Windows program (built with mingw-w64, run under Wine) that measures what Windows
// software does with file names in one folder, and checks that the folder keeps Windows' name
// rules. bench/wine.sh runs it on a plain folder and on a foldfs casefold=all mount of the same
// content; tests/integration/wine_test.cc runs its check mode on a foldfs mount.
//
//   winbench.exe bench ROOT [SECONDS]  timed rows over the layout below, one line per row:
//                                      "row NAME OPS SECONDS OPS_PER_S"; exit 1 on a surprise
//   winbench.exe check DIR [N]         Windows name rules in DIR (an empty folder): other
//                                      spellings find a file, CREATE_NEW of another spelling
//                                      fails with ERROR_FILE_EXISTS, two processes creating
//                                      the same N names in different cases make each once,
//                                      nothing lost; "FAIL ..." lines and exit 1 on any
//                                      violation, "differs ..." lines where the folder follows
//                                      Linux's casefold rules rather than Windows' (not errors)
//   winbench.exe race DIR CASE N [EVENTS K]  (check's child) CREATE_NEW of N names in DIR,
//                                      spelled in CASE (upper or lower), after setting event
//                                      EVENTS-readyK and waiting for EVENTS-go; prints
//                                      "created K"
//
// The bench layout under ROOT (made by bench/wine.sh directly in the Linux folder):
//   Files\Texture_NNNNN_Diffuse.dds    NLONG files (long names, not 8.3), 4 KiB each
//   Files\TXNNNNNN.DDS                 NSHORT files (8.3 names), 4 KiB each
//   Data\Textures\Level_One\Sub_Two\Part_Three\Group_Four\Item_NNN.dds   NDEEP files
//   ShaderCache\                       an empty folder (the start-up row writes into it)
// with NLONG, NSHORT, NDEEP = 4000, 1000, 100 unless given as WINBENCH_NLONG, WINBENCH_NSHORT,
// WINBENCH_NDEEP in the environment.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>

#define MAXP 1024

static int g_failures = 0;
static LARGE_INTEGER g_freq;

static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  g_failures++;
}

static double now(void) {
  LARGE_INTEGER t;
  QueryPerformanceCounter(&t);
  return (double)t.QuadPart / (double)g_freq.QuadPart;
}

// UTF-16 -> UTF-8 for messages.
static const char* u8(const wchar_t* w) {
  static char buf[4][MAXP * 3];
  static int next = 0;
  char* b = buf[next++ & 3];
  if (!WideCharToMultiByte(CP_UTF8, 0, w, -1, b, sizeof buf[0], NULL, NULL)) strcpy(b, "?");
  return b;
}

static void path_of(wchar_t* out, const wchar_t* dir, const wchar_t* fmt, ...) {
  wchar_t rel[MAXP];
  va_list ap;
  va_start(ap, fmt);
  _vsnwprintf(rel, MAXP, fmt, ap);
  rel[MAXP - 1] = 0;
  va_end(ap);
  _snwprintf(out, MAXP, L"%ls\\%ls", dir, rel);
  out[MAXP - 1] = 0;
}

// Swaps the case of ASCII letters: "Texture_00001_Diffuse.dds" -> "tEXTURE_00001_dIFFUSE.DDS".
static void swap_case(wchar_t* s) {
  for (; *s; s++) {
    if (*s >= L'a' && *s <= L'z')
      *s = *s - L'a' + L'A';
    else if (*s >= L'A' && *s <= L'Z')
      *s = *s - L'A' + L'a';
  }
}

static long env_long(const char* name, long dflt) {
  const char* v = getenv(name);
  return v && *v ? atol(v) : dflt;
}

// ---------------------------------------------------------------------------------------------
// bench

static const wchar_t* g_root;
static long g_nlong, g_nshort, g_ndeep;
static double g_seconds;

// An existing file of Files\ by index: long names first, then 8.3 names.
static void existing_name(wchar_t* out, long i, int other_case) {
  wchar_t name[64];
  i %= g_nlong + g_nshort;
  if (i < g_nlong)
    _snwprintf(name, 64, L"Texture_%05ld_Diffuse.dds", i);
  else
    _snwprintf(name, 64, L"TX%06ld.DDS", i - g_nlong);
  name[63] = 0;
  if (other_case) swap_case(name);
  path_of(out, g_root, L"Files\\%ls", name);
}

typedef int (*op_fn)(long i);  // 0 = as expected

// Runs op(0), op(1), ... until g_seconds have passed (checked every 16 ops), at least once;
// prints the row. per_op: how many counted operations one call makes.
static void row(const char* name, op_fn op, long per_op) {
  double t0 = now(), t;
  long i = 0;
  for (;;) {
    if (op(i)) {
      fail("%s: operation %ld", name, i);
      return;
    }
    i++;
    if ((i & 15) == 0 || per_op > 1) {
      t = now();
      if (t - t0 >= g_seconds) break;
    }
  }
  t = now() - t0;
  printf("row %s %ld %.6f %.1f\n", name, i * per_op, t, (double)(i * per_op) / t);
  fflush(stdout);
}

static int attr_expect(const wchar_t* p, int present, DWORD missing_error) {
  DWORD a = GetFileAttributesW(p);
  if (present) {
    if (a == INVALID_FILE_ATTRIBUTES) {
      printf("  GetFileAttributesW(%s): error %lu\n", u8(p), GetLastError());
      return 1;
    }
    return 0;
  }
  if (a != INVALID_FILE_ATTRIBUTES || GetLastError() != missing_error) {
    printf("  GetFileAttributesW(%s): %lx, error %lu (expected not found)\n", u8(p), a,
           GetLastError());
    return 1;
  }
  return 0;
}

static int op_attr_exact(long i) {
  wchar_t p[MAXP];
  existing_name(p, i, 0);
  return attr_expect(p, 1, 0);
}
static int op_attr_other(long i) {
  wchar_t p[MAXP];
  existing_name(p, i, 1);
  return attr_expect(p, 1, 0);
}
static int op_attr_missing_long(long i) {
  wchar_t p[MAXP];
  path_of(p, g_root, L"Files\\Missing_%05ld_Texture.dds", i % 100000);
  return attr_expect(p, 0, ERROR_FILE_NOT_FOUND);
}
static int op_attr_missing_83(long i) {
  wchar_t p[MAXP];
  path_of(p, g_root, L"Files\\M%05ld.DAT", i % 100000);
  return attr_expect(p, 0, ERROR_FILE_NOT_FOUND);
}

// CREATE_NEW of a new name, close, DeleteFileW of its other spelling.
static int create_delete(const wchar_t* p, const wchar_t* other) {
  HANDLE h = CreateFileW(p, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    printf("  CreateFileW(%s, CREATE_NEW): error %lu\n", u8(p), GetLastError());
    return 1;
  }
  CloseHandle(h);
  if (!DeleteFileW(other)) {
    printf("  DeleteFileW(%s): error %lu\n", u8(other), GetLastError());
    return 1;
  }
  return 0;
}
static int op_create_long(long i) {
  wchar_t p[MAXP], o[MAXP];
  path_of(p, g_root, L"Files\\New_%05ld_Shader.bin", i % 100000);
  path_of(o, g_root, L"Files\\NEW_%05ld_SHADER.BIN", i % 100000);
  return create_delete(p, o);
}
static int op_create_83(long i) {
  wchar_t p[MAXP], o[MAXP];
  path_of(p, g_root, L"Files\\N%05ld.TMP", i % 100000);
  path_of(o, g_root, L"Files\\n%05ld.tmp", i % 100000);
  return create_delete(p, o);
}

static int read_whole(const wchar_t* p) {
  char buf[4096];
  DWORD got = 0;
  HANDLE h = CreateFileW(p, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    printf("  CreateFileW(%s, OPEN_EXISTING): error %lu\n", u8(p), GetLastError());
    return 1;
  }
  int bad = !ReadFile(h, buf, sizeof buf, &got, NULL);
  CloseHandle(h);
  if (bad) printf("  ReadFile(%s): error %lu\n", u8(p), GetLastError());
  return bad;
}

// Seven wrong-case parts: six folders and the file.
static int op_open_deep(long i) {
  wchar_t p[MAXP];
  path_of(p, g_root, L"DATA\\TEXTURES\\LEVEL_ONE\\SUB_TWO\\PART_THREE\\GROUP_FOUR\\ITEM_%03ld.DDS",
          i % g_ndeep);
  return read_whole(p);
}

static long g_listed;
static int op_list(long i) {
  (void)i;
  wchar_t p[MAXP];
  WIN32_FIND_DATAW fd;
  long n = 0;
  path_of(p, g_root, L"Files\\*");
  HANDLE h = FindFirstFileW(p, &fd);
  if (h == INVALID_HANDLE_VALUE) {
    printf("  FindFirstFileW(%s): error %lu\n", u8(p), GetLastError());
    return 1;
  }
  do n++;
  while (FindNextFileW(h, &fd));
  FindClose(h);
  if (n != g_nlong + g_nshort + 2) {  // with "." and ".."
    printf("  listing of %s: %ld entries, expected %ld\n", u8(p), n, g_nlong + g_nshort + 2);
    return 1;
  }
  g_listed = n;
  return 0;
}

// A game starting: each step reads the attributes of an existing asset and opens and reads it
// (exact case; long and 8.3 names alternate), and every fourth step also writes a new file of
// its shader cache (create, write 2 KiB, close; 16 hex digits, as DXVK/vkd3d-style caches name
// them).
static long g_shaders;
static int op_startup(long i) {
  wchar_t p[MAXP];
  // Spread over long and 8.3 names: 7 of 8 steps long, 1 of 8 short (the layout's mix).
  existing_name(p, (i * 7919) % (g_nlong + g_nshort), 0);
  if (attr_expect(p, 1, 0) || read_whole(p)) return 1;
  if (i % 4 == 3) {
    char buf[2048];
    DWORD put = 0;
    memset(buf, (int)(i & 0xff), sizeof buf);
    path_of(p, g_root, L"ShaderCache\\%016llx.bin", (unsigned long long)i * 0x9e3779b97f4a7c15ULL);
    HANDLE h = CreateFileW(p, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
      printf("  CreateFileW(%s, CREATE_ALWAYS): error %lu\n", u8(p), GetLastError());
      return 1;
    }
    int bad = !WriteFile(h, buf, sizeof buf, &put, NULL) || put != sizeof buf;
    CloseHandle(h);
    if (bad) return 1;
    g_shaders++;
  }
  return 0;
}

static void clear_shader_cache(void) {
  wchar_t p[MAXP], f[MAXP];
  WIN32_FIND_DATAW fd;
  path_of(p, g_root, L"ShaderCache\\*.bin");
  HANDLE h = FindFirstFileW(p, &fd);
  if (h == INVALID_HANDLE_VALUE) return;
  do {
    path_of(f, g_root, L"ShaderCache\\%ls", fd.cFileName);
    if (!DeleteFileW(f)) fail("DeleteFileW(%s): error %lu", u8(f), GetLastError());
  } while (FindNextFileW(h, &fd));
  FindClose(h);
}

static int cmd_bench(const wchar_t* root, double seconds, const wchar_t* only) {
  g_root = root;
  g_seconds = seconds;
  g_nlong = env_long("WINBENCH_NLONG", 4000);
  g_nshort = env_long("WINBENCH_NSHORT", 1000);
  g_ndeep = env_long("WINBENCH_NDEEP", 100);
  static const struct {
    const char* name;
    op_fn op;
  } rows[] = {
      {"attr_exact", op_attr_exact},
      {"attr_other", op_attr_other},
      {"attr_missing_long", op_attr_missing_long},
      {"attr_missing_83", op_attr_missing_83},
      {"create_long", op_create_long},
      {"create_83", op_create_83},
      {"open_deep", op_open_deep},
      {"list", op_list},
      {"startup", op_startup},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0] && !g_failures; r++) {
    wchar_t w[64];
    MultiByteToWideChar(CP_UTF8, 0, rows[r].name, -1, w, 64);
    if (only && wcscmp(only, L"all") && !wcsstr(only, w)) continue;
    if (rows[r].op == op_list) {
      // Entries per second: time whole listings, count entries.
      g_listed = 0;
      double t0 = now(), t = 0;
      long n = 0, calls = 0;
      do {
        if (op_list(calls)) {
          fail("list: listing %ld", calls);
          break;
        }
        n += g_listed;
        calls++;
        t = now() - t0;
      } while (t < seconds);
      if (!g_failures) {
        printf("row list %ld %.6f %.1f\n", n, t, n / t);
        printf("row list_ms %ld %.6f %.3f\n", calls, t, t * 1000.0 / calls);
      }
      continue;
    }
    if (rows[r].op == op_startup) {
      g_shaders = 0;
      row("startup", op_startup, 1);
      clear_shader_cache();
      continue;
    }
    row(rows[r].name, rows[r].op, 1);
  }
  fflush(stdout);
  return g_failures ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// check

static int write_new(const wchar_t* p, DWORD disposition, const char* text, DWORD* error) {
  HANDLE h = CreateFileW(p, GENERIC_WRITE, 0, NULL, disposition, FILE_ATTRIBUTE_NORMAL, NULL);
  *error = GetLastError();
  if (h == INVALID_HANDLE_VALUE) return 0;
  DWORD put = 0;
  int ok = WriteFile(h, text, (DWORD)strlen(text), &put, NULL) && put == strlen(text);
  CloseHandle(h);
  return ok;
}

static int read_text(const wchar_t* p, char* buf, DWORD cap) {
  DWORD got = 0;
  HANDLE h = CreateFileW(p, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) return 0;
  int ok = ReadFile(h, buf, cap - 1, &got, NULL);
  CloseHandle(h);
  buf[ok ? got : 0] = 0;
  return ok;
}

static void expect_content(const wchar_t* p, const char* want) {
  char buf[256];
  if (!read_text(p, buf, sizeof buf))
    fail("open %s: error %lu (expected content \"%s\")", u8(p), GetLastError(), want);
  else if (strcmp(buf, want))
    fail("%s holds \"%s\", expected \"%s\"", u8(p), buf, want);
}

static void expect_exists(const wchar_t* p) {
  if (GetFileAttributesW(p) == INVALID_FILE_ATTRIBUTES)
    fail("GetFileAttributesW(%s): error %lu, expected the file", u8(p), GetLastError());
}

static void expect_missing(const wchar_t* p) {
  if (GetFileAttributesW(p) != INVALID_FILE_ATTRIBUTES)
    fail("%s exists, expected it gone", u8(p));
  else if (GetLastError() != ERROR_FILE_NOT_FOUND)
    fail("GetFileAttributesW(%s): error %lu, expected ERROR_FILE_NOT_FOUND", u8(p), GetLastError());
}

// Names in DIR (without "." and ".."), at most cap.
static int list_names(const wchar_t* dir, wchar_t (*names)[MAX_PATH], int cap) {
  wchar_t p[MAXP];
  WIN32_FIND_DATAW fd;
  int n = 0;
  path_of(p, dir, L"*");
  HANDLE h = FindFirstFileW(p, &fd);
  if (h == INVALID_HANDLE_VALUE) return -1;
  do {
    if (!wcscmp(fd.cFileName, L".") || !wcscmp(fd.cFileName, L"..")) continue;
    if (n < cap) wcscpy(names[n], fd.cFileName);
    n++;
  } while (FindNextFileW(h, &fd));
  FindClose(h);
  return n;
}

static int cmp_nocase(const void* a, const void* b) {
  return CompareStringOrdinal((const wchar_t*)a, -1, (const wchar_t*)b, -1, TRUE) - CSTR_EQUAL;
}

// Exactly `want` entries, no two of them the same name to Windows.
static void expect_listing(const wchar_t* dir, int want) {
  static wchar_t names[8192][MAX_PATH];
  int n = list_names(dir, names, 8192);
  if (n < 0) {
    fail("FindFirstFileW(%s\\*): error %lu", u8(dir), GetLastError());
    return;
  }
  if (n != want) fail("%s lists %d entries, expected %d", u8(dir), n, want);
  if (n > 8192) n = 8192;
  qsort(names, n, sizeof names[0], cmp_nocase);
  int dups = 0;
  for (int i = 1; i < n; i++)
    if (!cmp_nocase(names[i - 1], names[i]) && ++dups <= 5)
      printf("  %s lists both \"%s\" and \"%s\"\n", u8(dir), u8(names[i - 1]), u8(names[i]));
  if (dups) fail("%s lists %d pair(s) of names that are one name on Windows", u8(dir), dups);
}

static void check_names_in(const wchar_t* dir) {
  wchar_t p[MAXP], q[MAXP];
  DWORD err;

  // A long name: any spelling finds it, CREATE_NEW of another spelling is refused.
  path_of(p, dir, L"Foo Bar.txt");
  if (!write_new(p, CREATE_NEW, "hello", &err)) fail("CREATE_NEW %s: error %lu", u8(p), err);
  static const wchar_t* spellings[] = {L"foo bar.txt", L"FOO BAR.TXT", L"fOO bAR.Txt"};
  for (int i = 0; i < 3; i++) {
    path_of(q, dir, L"%ls", spellings[i]);
    expect_exists(q);
    expect_content(q, "hello");
    if (write_new(q, CREATE_NEW, "dup", &err) || err != ERROR_FILE_EXISTS)
      fail("CREATE_NEW %s beside \"Foo Bar.txt\": error %lu, expected ERROR_FILE_EXISTS (80)",
           u8(q), err);
  }
  // CREATE_ALWAYS of another spelling opens (and truncates) the existing file: its name stays.
  path_of(q, dir, L"FOO BAR.txt");
  if (!write_new(q, CREATE_ALWAYS, "again", &err) || err != ERROR_ALREADY_EXISTS)
    fail("CREATE_ALWAYS %s: error %lu, expected success with ERROR_ALREADY_EXISTS", u8(q), err);
  expect_content(p, "again");

  // An 8.3 name, the kind Wine cannot trust a case-sensitive folder with.
  path_of(p, dir, L"README.TXT");
  if (!write_new(p, CREATE_NEW, "readme", &err)) fail("CREATE_NEW %s: error %lu", u8(p), err);
  path_of(q, dir, L"readme.txt");
  if (write_new(q, CREATE_NEW, "dup", &err) || err != ERROR_FILE_EXISTS)
    fail("CREATE_NEW %s beside README.TXT: error %lu, expected ERROR_FILE_EXISTS", u8(q), err);
  expect_content(q, "readme");

  // Folders: another spelling of an existing folder is that folder.
  path_of(p, dir, L"Saves");
  if (!CreateDirectoryW(p, NULL)) fail("CreateDirectoryW(%s): error %lu", u8(p), GetLastError());
  path_of(q, dir, L"SAVES");
  if (CreateDirectoryW(q, NULL) || GetLastError() != ERROR_ALREADY_EXISTS)
    fail("CreateDirectoryW(%s) beside Saves: error %lu, expected ERROR_ALREADY_EXISTS", u8(q),
         GetLastError());
  path_of(q, dir, L"saves\\Slot1.sav");
  if (!write_new(q, CREATE_NEW, "slot", &err)) fail("CREATE_NEW %s: error %lu", u8(q), err);
  path_of(q, dir, L"SAVES\\SLOT1.SAV");
  expect_content(q, "slot");
  path_of(q, dir, L"Saves");
  expect_listing(q, 1);

  // A path of several wrong-case parts.
  path_of(p, dir, L"Data");
  CreateDirectoryW(p, NULL);
  path_of(p, dir, L"Data\\Textures");
  CreateDirectoryW(p, NULL);
  path_of(p, dir, L"Data\\Textures\\Sky");
  if (!CreateDirectoryW(p, NULL)) fail("CreateDirectoryW(%s): error %lu", u8(p), GetLastError());
  path_of(p, dir, L"DATA\\TEXTURES\\SKY\\Cloud.dds");
  if (!write_new(p, CREATE_NEW, "cloud", &err)) fail("CREATE_NEW %s: error %lu", u8(p), err);
  path_of(q, dir, L"data\\textures\\sky\\CLOUD.DDS");
  expect_content(q, "cloud");
  path_of(q, dir, L"Data\\Textures\\Sky");
  expect_listing(q, 1);

  // Rename by other spellings: the old name goes, the new one holds the content.
  path_of(p, dir, L"FOO BAR.TXT");
  path_of(q, dir, L"Renamed File.txt");
  if (!MoveFileW(p, q)) fail("MoveFileW(%s, %s): error %lu", u8(p), u8(q), GetLastError());
  path_of(p, dir, L"foo bar.txt");
  expect_missing(p);
  path_of(q, dir, L"RENAMED FILE.TXT");
  expect_content(q, "again");
  // Renaming onto another spelling of an existing name without MOVEFILE_REPLACE_EXISTING.
  path_of(p, dir, L"Other.txt");
  if (!write_new(p, CREATE_NEW, "other", &err)) fail("CREATE_NEW %s: error %lu", u8(p), err);
  path_of(q, dir, L"renamed FILE.txt");
  if (MoveFileW(p, q) || GetLastError() != ERROR_ALREADY_EXISTS)
    fail(
        "MoveFileW(Other.txt, %s) onto an existing file: error %lu, expected "
        "ERROR_ALREADY_EXISTS",
        u8(q), GetLastError());
  expect_content(p, "other");
  expect_content(q, "again");
  // Case-only rename: on Windows the name changes case. Whatever happens, nothing is lost.
  path_of(p, dir, L"other.txt");
  path_of(q, dir, L"OTHER.TXT");
  if (!MoveFileW(p, q))
    printf("differs MoveFileW(other.txt, OTHER.TXT): error %lu\n", GetLastError());
  expect_content(q, "other");
  {
    static wchar_t names[16][MAX_PATH];
    int n = list_names(dir, names, 16);
    for (int i = 0; i < n && i < 16; i++)
      if (!cmp_nocase(names[i], L"other.txt") && wcscmp(names[i], L"OTHER.TXT"))
        printf("differs case-only rename: the folder lists \"%s\", Windows \"OTHER.TXT\"\n",
               u8(names[i]));
  }
  // DOS attributes (kept by Wine in the user.DOSATTRIB extended attribute), set and read
  // through other spellings.
  path_of(p, dir, L"oThEr.TxT");
  if (!SetFileAttributesW(p, FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM))
    fail("SetFileAttributesW(%s, HIDDEN|SYSTEM): error %lu", u8(p), GetLastError());
  path_of(q, dir, L"OTHER.txt");
  DWORD attrs = GetFileAttributesW(q);
  if (attrs == INVALID_FILE_ATTRIBUTES ||
      (attrs & (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM)) !=
          (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM))
    fail("GetFileAttributesW(%s) after SetFileAttributesW(HIDDEN|SYSTEM): %lx, error %lu", u8(q),
         attrs, GetLastError());
  SetFileAttributesW(q, FILE_ATTRIBUTE_NORMAL);
  // Delete by another spelling.
  path_of(p, dir, L"rEnAmEd fIlE.TxT");
  if (!DeleteFileW(p)) fail("DeleteFileW(%s): error %lu", u8(p), GetLastError());
  path_of(q, dir, L"Renamed File.txt");
  expect_missing(q);
  // Left: README.TXT, Saves, Data, Other.txt.
  expect_listing(dir, 4);
}

// Where Linux's casefold (utf8-12.1, full case folding, normalisation) and Windows (simple
// upper-casing, no normalisation) disagree: reported, not counted as failures.
static void note_unicode(const wchar_t* dir) {
  static const struct {
    const wchar_t *make, *probe;
    const char* what;
  } pairs[] = {
      {L"Stra\u00dfe.txt", L"STRASSE.TXT", "sharp s and SS"},
      {L"Caf\u00e9.txt", L"Cafe\u0301.txt", "composed and decomposed e-acute"},
      {L"\u0130stanbul.txt", L"i\u0307stanbul.txt", "capital I with dot and i + combining dot"},
      {L"\u2c2f.txt", L"\u2c5f.txt", "Glagolitic caudate chri (Unicode 14)"},
      {L"\u00c9t\u00e9.txt", L"\u00e9T\u00c9.TXT", "e-acute upper and lower"},
  };
  wchar_t sub[MAXP], p[MAXP], q[MAXP];
  path_of(sub, dir, L"Unicode");
  if (!CreateDirectoryW(sub, NULL)) {
    fail("CreateDirectoryW(%s): error %lu", u8(sub), GetLastError());
    return;
  }
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    DWORD err;
    path_of(p, sub, L"%ls", pairs[i].make);
    path_of(q, sub, L"%ls", pairs[i].probe);
    if (!write_new(p, CREATE_NEW, "u", &err)) {
      printf("note CREATE_NEW %s: error %lu\n", u8(p), err);
      continue;
    }
    int windows_same =
        CompareStringOrdinal(pairs[i].make, -1, pairs[i].probe, -1, TRUE) == CSTR_EQUAL;
    int found = GetFileAttributesW(q) != INVALID_FILE_ATTRIBUTES;
    printf("%s %s: \"%s\" %s \"%s\" here, %s on Windows\n",
           found == windows_same ? "same" : "differs", pairs[i].what, u8(pairs[i].make),
           found ? "finds" : "does not find", u8(pairs[i].probe),
           windows_same ? "one name" : "two names");
    DeleteFileW(p);
  }
  RemoveDirectoryW(sub);
}

// Two processes create the same names in different cases at once.
static void check_race(const wchar_t* dir, const wchar_t* self, long n) {
  wchar_t sub[MAXP], cmd[2][MAXP];
  path_of(sub, dir, L"Race");
  if (!CreateDirectoryW(sub, NULL)) {
    fail("CreateDirectoryW(%s): error %lu", u8(sub), GetLastError());
    return;
  }
  // The children start at once: each says it is ready, then waits for "go".
  wchar_t ev[64];
  DWORD self_pid = GetCurrentProcessId();
  HANDLE ready[2];
  _snwprintf(ev, 64, L"winbench-race-%lu-go", self_pid);
  HANDLE go = CreateEventW(NULL, TRUE, FALSE, ev);
  for (int k = 0; k < 2; k++) {
    _snwprintf(ev, 64, L"winbench-race-%lu-ready%d", self_pid, k);
    ready[k] = CreateEventW(NULL, TRUE, FALSE, ev);
  }
  PROCESS_INFORMATION pi[2];
  HANDLE out_r[2], out_w[2];
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  const wchar_t* cases[2] = {L"upper", L"lower"};
  for (int k = 0; k < 2; k++) {
    STARTUPINFOW si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    CreatePipe(&out_r[k], &out_w[k], &sa, 0);
    SetHandleInformation(out_r[k], HANDLE_FLAG_INHERIT, 0);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdOutput = out_w[k];
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    _snwprintf(cmd[k], MAXP, L"\"%ls\" race \"%ls\" %ls %ld winbench-race-%lu %d", self, sub,
               cases[k], n, self_pid, k);
    if (!CreateProcessW(NULL, cmd[k], NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi[k])) {
      fail("CreateProcessW(%s): error %lu", u8(cmd[k]), GetLastError());
      return;
    }
    CloseHandle(out_w[k]);
  }
  if (WaitForMultipleObjects(2, ready, TRUE, 60000) != WAIT_OBJECT_0)
    fail("the race children did not get ready in 60 s");
  SetEvent(go);
  long created = 0;
  for (int k = 0; k < 2; k++) {
    char buf[4096];
    DWORD got, total = 0;
    while (total < sizeof buf - 1 &&
           ReadFile(out_r[k], buf + total, sizeof buf - 1 - total, &got, NULL) && got)
      total += got;
    buf[total] = 0;
    if (WaitForSingleObject(pi[k].hProcess, 120000) != WAIT_OBJECT_0) {
      TerminateProcess(pi[k].hProcess, 1);
      fail("race child %d did not finish in 120 s", k);
    }
    DWORD code = 1;
    GetExitCodeProcess(pi[k].hProcess, &code);
    const char* c = strstr(buf, "created ");
    if (code != 0 || !c) fail("race child %d: exit %lu, output: %s", k, code, buf);
    if (c) created += atol(c + 8);
    printf("race child %d (%s): %s", k, u8(cases[k]), c ? c : "\n");
  }
  if (created != n)
    fail("two processes created %ld files for %ld names (each name must be made once)", created, n);
  expect_listing(sub, (int)n);
}

static int cmd_race(const wchar_t* dir, const wchar_t* which, long n, const wchar_t* events,
                    const wchar_t* index) {
  long created = 0;
  if (events) {  // say ready, wait for go
    wchar_t ev[64];
    _snwprintf(ev, 64, L"%ls-ready%ls", events, index);
    HANDLE ready = OpenEventW(EVENT_MODIFY_STATE, FALSE, ev);
    _snwprintf(ev, 64, L"%ls-go", events);
    HANDLE go = OpenEventW(SYNCHRONIZE, FALSE, ev);
    if (!ready || !go) {
      printf("FAIL OpenEventW(%s): error %lu\n", u8(ev), GetLastError());
      return 1;
    }
    SetEvent(ready);
    if (WaitForSingleObject(go, 60000) != WAIT_OBJECT_0) {
      printf("FAIL no go in 60 s\n");
      return 1;
    }
  }
  int upper = !wcscmp(which, L"upper");
  for (long i = 0; i < n; i++) {
    wchar_t name[64], p[MAXP];
    DWORD err;
    // Long names and 8.3 names alternate.
    if (i % 2)
      _snwprintf(name, 64, L"Race_File_%05ld.Dat", i);
    else
      _snwprintf(name, 64, L"R%05ld.Dat", i);
    name[63] = 0;
    for (wchar_t* s = name; *s; s++) *s = upper ? (wchar_t)towupper(*s) : (wchar_t)towlower(*s);
    path_of(p, dir, L"%ls", name);
    if (write_new(p, CREATE_NEW, upper ? "upper" : "lower", &err))
      created++;
    else if (err != ERROR_FILE_EXISTS) {
      printf("FAIL CREATE_NEW %s: error %lu\n", u8(p), err);
      return 1;
    }
  }
  printf("created %ld\n", created);
  return 0;
}

static int cmd_check(const wchar_t* dir, long n) {
  wchar_t self[MAXP];
  GetModuleFileNameW(NULL, self, MAXP);
  check_names_in(dir);
  note_unicode(dir);
  check_race(dir, self, n);
  printf("%s: %d violation(s) of Windows name rules\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: winbench.exe bench ROOT [SECONDS [ROWS]] | check DIR [N] | race DIR upper|lower "
          "N\n");
  return 2;
}

int wmain(int argc, wchar_t** argv) {
  QueryPerformanceFrequency(&g_freq);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && !wcscmp(argv[1], L"bench"))
    return cmd_bench(argv[2], argc > 3 ? _wtof(argv[3]) : 2.0, argc > 4 ? argv[4] : NULL);
  if (argc >= 3 && !wcscmp(argv[1], L"check"))
    return cmd_check(argv[2], argc > 3 ? _wtol(argv[3]) : 400);
  if ((argc == 5 || argc == 7) && !wcscmp(argv[1], L"race"))
    return cmd_race(argv[2], argv[3], _wtol(argv[4]), argc == 7 ? argv[5] : NULL,
                    argc == 7 ? argv[6] : NULL);
  return usage();
}
