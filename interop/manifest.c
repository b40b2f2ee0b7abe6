/* interop/manifest.c: written in issue 12 (see interop/CMakeLists.txt) */
