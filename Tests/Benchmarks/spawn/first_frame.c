/* The benchmark's helper: writes one frame (4-byte big-endian length, then JSON) to fd 3 and exits. */
#include <string.h>
#include <unistd.h>

int main(void)
{
    static const char body[] = "{\"type\":\"privsep.hello\",\"id\":1,\"body\":{}}";
    unsigned char frame[4 + sizeof body - 1];
    unsigned int n = sizeof body - 1;
    frame[0] = (unsigned char)(n >> 24);
    frame[1] = (unsigned char)(n >> 16);
    frame[2] = (unsigned char)(n >> 8);
    frame[3] = (unsigned char)n;
    memcpy(frame + 4, body, n);
    return write(3, frame, sizeof frame) == (ssize_t)sizeof frame ? 0 : 1;
}
