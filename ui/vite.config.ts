import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The app loads the built files from ui/dist (tauri.conf.json `frontendDist`); `npm run
// dev` serves the same on 5173 for `tauri dev --config src-tauri/tauri.dev.conf.json`.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: {
    port: 5173,
    strictPort: true,
    // The messages live with the Rust crates (crates/core/locales/*.ftl): one set of files
    // for both front ends, imported with `?raw` (ui/src/lib/messages.ts).
    // (Paths are resolved against ui/, the root.)
    fs: { allow: ['.', '../crates/core/locales'] },
  },
  build: {
    target: 'safari15',
    outDir: 'dist',
    emptyOutDir: true,
    // Tauri serves the files itself: no module preload polyfill needed.
    modulePreload: { polyfill: false },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
});
