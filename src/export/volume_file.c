/*
 * src/export/volume_file.c - a plain file or block device exported as it
 * is: no snapshots, no metadata server.  Every request goes straight to
 * the device through dio (O_DIRECT, async).  Used to export an origin
 * before it has a store, and as the baseline the benchmarks compare the
 * csnap data path against.
 *
 * Trim is accepted and ignored (NBD makes it advisory): punching holes
 * would need a synchronous fallocate in the event loop and buys nothing
 * for the devices csnap runs on.
 */
#include "src/export/volume.h"

#include "src/export/dio.h"
#include "src/export/loop.h"
#include "ioengine/ioengine.h"
#include "utils/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct volume_file {
	struct volume vol;
	struct io_dev *dev;
	struct dio *dio;
};

static void req_done(void *arg, int err)
{
	struct vol_req *req = arg;

	req->done(req, err);
}

static void file_submit(struct volume *vol, struct vol_req *req)
{
	struct volume_file *vf = (struct volume_file *)vol;
	unsigned fl = req->flags & VOL_REQ_FUA ? DIO_FUA : 0;

	switch (req->op) {
	case VOL_READ:
		dio_read(vf->dio, req->buf, req->len, req->off, req_done, req);
		return;
	case VOL_WRITE:
		dio_write(vf->dio, req->buf, req->len, req->off, fl, req_done, req);
		return;
	case VOL_ZEROES:
		dio_zero(vf->dio, req->len, req->off, fl, req_done, req);
		return;
	case VOL_FLUSH:
		dio_flush(vf->dio, req_done, req);
		return;
	case VOL_TRIM:
		if (fl)
			dio_flush(vf->dio, req_done, req);
		else
			req->done(req, 0);
		return;
	}
	req->done(req, -EINVAL);
}

static void file_destroy(struct volume *vol)
{
	struct volume_file *vf = (struct volume_file *)vol;

	dio_destroy(vf->dio);
	io_dev_close(vf->dev);
	free(vf);
}

static const struct volume_ops file_ops = {
	.submit = file_submit,
	.destroy = file_destroy,
};

int volume_file_open(struct evloop *lp, const char *name, const char *path,
		     bool readonly, struct volume **out)
{
	struct volume_file *vf = calloc(1, sizeof *vf);
	int rc;

	if (!vf)
		return err_set(ENOMEM, "out of memory");
	if (strlen(name) >= sizeof vf->vol.name) {
		free(vf);
		return err_set(ENAMETOOLONG, "export name too long: %s", name);
	}
	rc = io_dev_open(path, readonly ? IO_DEV_RDONLY : IO_DEV_RDWR, &vf->dev);
	if (rc < 0) {
		free(vf);
		return rc;
	}
	rc = dio_create(loop_io(lp), vf->dev, &vf->dio);
	if (rc < 0) {
		io_dev_close(vf->dev);
		free(vf);
		return rc;
	}
	vf->vol.ops = &file_ops;
	snprintf(vf->vol.name, sizeof vf->vol.name, "%s", name);
	snprintf(vf->vol.description, sizeof vf->vol.description, "%s", path);
	vf->vol.size = io_dev_size(vf->dev);
	vf->vol.flags = readonly ? VOL_READONLY : 0;
	vf->vol.pref_block = 4096;
	vf->vol.refs = 1;
	*out = &vf->vol;
	return 0;
}
