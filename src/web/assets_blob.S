/*
 * assets_blob.S — links the browser assets built under build/web/ (the
 * Makefile makes them from web/, with npm packages from its lockfile) into
 * the binary, so /vitals.js and the dashboard are served from memory and
 * always match the build. Assembled from the repository root. Each asset
 * is followed by a NUL that is not part of it.
 */
    .section .rodata
    .global asset_vitals_js
    .global asset_vitals_js_end
    .global asset_dashboard_html
    .global asset_dashboard_html_end
    .global asset_dashboard_js
    .global asset_dashboard_js_end
    .global asset_dashboard_css
    .global asset_dashboard_css_end
asset_vitals_js:
    .incbin "build/web/vitals.js"
asset_vitals_js_end:
    .byte 0
asset_dashboard_html:
    .incbin "build/web/dashboard.html"
asset_dashboard_html_end:
    .byte 0
asset_dashboard_js:
    .incbin "build/web/dashboard.js"
asset_dashboard_js_end:
    .byte 0
asset_dashboard_css:
    .incbin "build/web/dashboard.css"
asset_dashboard_css_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
