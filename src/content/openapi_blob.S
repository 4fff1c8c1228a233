/*
 * openapi_blob.S — links docs/openapi.yaml into the binary, so /openapi.yaml
 * is served from memory and can never disagree with the build. The Makefile
 * assembles this from the repository root.
 */
    .section .rodata
    .global openapi_yaml
    .global openapi_yaml_end
openapi_yaml:
    .incbin "docs/openapi.yaml"
openapi_yaml_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
